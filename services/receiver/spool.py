"""The spool: where a received instance is made durable before the sender hears Success.

Layout under ``<data_dir>/spool``:

- ``incoming/``: files being received (the listener streams each C-STORE data set there, its
  File Meta Information ahead of it, as it arrives). Anything left here at start-up belongs to
  a transfer that was never answered, so it is removed.
- ``<arrival>-<random>.dcm``: received, fsynced, renamed into place, directory fsynced. Mode
  0600 until the ``instance.received`` message is confirmed by the bus, then 0640. The mode is
  the publish mark: a crash before the confirm leaves a 0600 file, which start-up publishes.

The router removes a spool file once it has filed it, so on a bus that keeps messages across a
restart only unmarked files are re-published; on the in-memory bus every file still in the
spool is (its queue died with the process). Consumers are idempotent either way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from shared.files import fsync_directory

RECORD_XATTR = "user.store_server.received"
UNPUBLISHED_MODE = 0o600
PUBLISHED_MODE = 0o640


class Spool:
    """The receiver's source of truth for instances not yet filed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"

    def prepare(self) -> list[Path]:
        """Create the folders and remove partial transfers; return what was removed."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        removed = [path for path in self.incoming.iterdir() if path.is_file()]
        for path in removed:
            path.unlink()
        if removed:
            fsync_directory(self.incoming)
        return removed

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def new_name(self) -> str:
        """A unique spool file name that sorts by arrival."""
        return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.dcm"

    def incoming_path(self) -> Path:
        """A new, unique file name in ``incoming/`` for a transfer about to start."""
        return self.incoming / f"{uuid.uuid4().hex}.part"

    def place(self, received: Path, name: str, record: bytes) -> tuple[Path, int]:
        """Put a fully received file into the spool as ``name``; its path, and a descriptor
        open on it for :meth:`sync` (which closes it).

        ``record`` (the encoded ``instance.received`` message) is kept with the file, so a
        re-publish after a crash still says who sent it and when. ``received`` must be on the
        spool's filesystem (it is, under ``incoming/``). Not yet durable: :meth:`sync` makes it
        so, and the sender hears Success only after both. The file is renamed before it is
        synced so that its message can be published while the fsync runs: a consumer may take
        the message at once and must find the file (and may have moved it on by the time the
        fsync runs, hence the descriptor). A crash in between leaves an unpublished 0600 file,
        which start-up publishes again, or nothing; the sender never heard Success.
        """
        target = self.root / name
        descriptor = os.open(received, os.O_RDONLY)
        try:
            _set_record(descriptor, record)
            os.fchmod(descriptor, UNPUBLISHED_MODE)
            os.rename(received, target)
        except OSError:
            os.close(descriptor)
            target.unlink(missing_ok=True)
            raise
        return target, descriptor

    def sync(self, descriptor: int) -> None:
        """Make a placed file (by its descriptor, which is closed) and its name durable."""
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        fsync_directory(self.root)

    def mark_published(self, path: Path) -> None:
        # Not fsynced on purpose: losing the mark in a crash only causes a harmless re-publish.
        # Gone already: a consumer took the confirmed message and filed the file, as it may.
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, PUBLISHED_MODE)

    def discard(self, path: Path) -> None:
        """Remove a spooled file whose publish failed (the sender was told to retry)."""
        path.unlink(missing_ok=True)
        fsync_directory(path.parent)

    def record(self, path: Path) -> bytes | None:
        """The ``instance.received`` message kept with a spooled file, if the filesystem could."""
        try:
            return os.getxattr(path, RECORD_XATTR)
        except OSError:
            return None

    def to_publish(self, *, bus_is_durable: bool) -> Iterator[Path]:
        """Spooled files to (re-)publish at start-up, oldest first."""
        for path in sorted(self.root.glob("*.dcm")):
            if not bus_is_durable or stat.S_IMODE(path.stat().st_mode) == UNPUBLISHED_MODE:
                yield path


def _set_record(descriptor: int, record: bytes) -> None:
    try:
        os.setxattr(descriptor, RECORD_XATTR, record)
    except OSError as error:
        # Filesystems without user extended attributes: a re-publish then rebuilds the message
        # from the file meta, without the sender's AE title and address.
        if error.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ENOSPC):
            raise
