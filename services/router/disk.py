"""Putting a file in its account: folders created with the configured mode and owner, the
file moved atomically and durably."""

from __future__ import annotations

import os
from pathlib import Path

from services.router.destination import Home
from shared.files import fsync_directory, move_into


def _own(path: Path, home: Home) -> None:
    # Ownership can only be given away by root; as anyone else the files stay the service's.
    if os.geteuid() == 0 and (home.owner_uid is not None or home.owner_gid is not None):
        os.chown(
            path,
            home.owner_uid if home.owner_uid is not None else -1,
            home.owner_gid if home.owner_gid is not None else -1,
        )


def ensure_directory(home: Home, directory: Path, mode: int) -> None:
    """Create ``directory`` (inside ``home.path``) and its missing parents, durably."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=mode)
        except FileExistsError:  # another router made it a moment ago
            continue
        path.chmod(mode)  # mkdir's mode is narrowed by the umask; the setting is meant
        if path == home.path or home.path in path.parents:
            _own(path, home)
        fsync_directory(path.parent)


def place(moves: list[tuple[Path, Path, Home]], directory_mode: int, file_mode: int) -> None:
    """Move each spooled file to its target (replacing what is there) with the configured
    mode and owner. Every folder a file went into is synced once, at the end, and also when
    a move fails, so the files moved before it are as safe as if it had not."""
    touched: set[Path] = set()
    try:
        for spooled, target, home in moves:
            ensure_directory(home, target.parent, directory_mode)
            spooled.chmod(file_mode)
            _own(spooled, home)
            move_into(spooled, target)
            touched.add(target.parent)
    finally:
        for folder in sorted(touched):
            fsync_directory(folder)


def kept_home(home: Home, is_account: bool) -> Path:
    """What emptying a study's folder must leave: an account's home stays as it was made, an
    emptied ``Guest/<name>`` folder goes too."""
    return home.path if is_account else home.path.parent


def remove_empty(folder: Path, *, keep: Path) -> None:
    """Remove ``folder``'s empty folders, ``folder`` itself if it ends empty, then its empty
    parents below ``keep``."""
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        _rmdir_if_empty(path)
    current = folder
    while current != keep and current.is_relative_to(keep):
        if not _rmdir_if_empty(current):
            return
        current = current.parent


def _rmdir_if_empty(path: Path) -> bool:
    try:
        os.rmdir(path)
    except OSError:  # not empty (something arrived meanwhile), or gone already
        return not path.exists()
    fsync_directory(path.parent)
    return True
