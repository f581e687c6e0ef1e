"""What a server process holds while it runs: its claim on the data directory.

Two receivers on one spool would undo each other's work (each clears the other's transfers in
progress at start-up and re-publishes its files), so a process that receives takes an
exclusive lock on the data directory before it opens the index or touches a file, and a second
one refuses at once, naming the process that holds it. The lock is the kernel's (``flock``):
it is released when its process ends, however it ends, so a crash leaves nothing to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "store-server.lock"


class StartError(RuntimeError):
    """The process cannot start here; the message names the setting and the cause."""


class DataDirectoryLock:
    """An exclusive, process-lifetime lock on a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StartError` naming the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as error:
            raise StartError(
                f"data_dir: cannot use {self.path.parent}: {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise StartError(
                f"data_dir: {self.path.parent.resolve()} is in use by another store-server "
                f"(pid {holder}); stop it first, or give this one its own --data-dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    @property
    def descriptor(self) -> int | None:
        """The open lock file while held: handed to a child process, it keeps the lock until
        both have ended."""
        return self._descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)  # closing the descriptor drops the flock
            self._descriptor = None
