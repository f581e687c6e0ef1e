"""Patient data private by default: what a server process creates is readable by its user and
its group only, and what it owns that is looser is made so at start-up.

A server sets its umask to 0027 before it creates anything (its lock, its log, its index,
spool, quarantine, commitments, heartbeats): directories come out 0750, files 0640. Its files
from before (a data directory made by an older version, or by hand) are checked at each
start: a group-writable or world-readable one is tightened to 0750 or 0640 (never loosened),
with a warning naming it. The accounts tree keeps the router's own modes and owners
(``router.directory_mode``, ``file_mode``, an account's owner): only its root is checked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from shared.log import get_logger

log = get_logger(__name__)

PRIVATE_UMASK = 0o027
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
# What a server owns under its data directory, walked whole.
OWNED_TREES = ("spool", "quarantine", "logs", "heartbeats", "commitments")
# What it owns there, checked alone.
OWNED_ENTRIES = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "store-server.lock")


def private_umask() -> int:
    """Set the process umask to 0027; the previous one."""
    return os.umask(PRIVATE_UMASK)


def tighten(data_dir: Path, log_file: Path | None) -> list[tuple[Path, int, int]]:
    """Tighten what the server owns to 0750 (folders) and 0640 (files); what was changed,
    as (path, old mode, new mode), each also logged as a warning."""
    changed = []
    for path in _owned(data_dir, log_file):
        try:
            info = path.lstat()
        except OSError:
            continue  # gone meanwhile, or never there
        if stat.S_ISLNK(info.st_mode):
            continue  # a link's target is not ours to judge
        allowed = DIRECTORY_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
        old = stat.S_IMODE(info.st_mode)
        new = old & allowed
        if new == old:
            continue
        try:
            os.chmod(path, new)
        except OSError as error:
            log.error("privacy.cannot_tighten", path=str(path), mode=f"{old:o}", error=str(error))
            continue
        changed.append((path, old, new))
        log.warning("privacy.mode_tightened", path=str(path), was=f"{old:o}", now=f"{new:o}")
    return changed


def _owned(data_dir: Path, log_file: Path | None) -> Iterator[Path]:
    yield data_dir
    yield data_dir / "accounts"
    for name in OWNED_ENTRIES:
        yield data_dir / name
    for name in OWNED_TREES:
        yield from _tree(data_dir / name)
    if log_file is not None:
        yield log_file
        yield from log_file.parent.glob(f"{log_file.name}.*")  # rotated copies


def _tree(root: Path) -> Iterator[Path]:
    if not root.is_dir() or root.is_symlink():
        return
    yield root
    for folder, directories, files in os.walk(root):
        for name in directories + files:
            yield Path(folder) / name
