"""Durable file operations: nothing is visible under its final name until it is complete.

Every helper here follows write, fsync, rename, fsync the directory, so a crash at any point
leaves either the old state or the new one, never a half-written file under a real name.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename, link or unlink in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write_bytes(path: Path, content: bytes, mode: int = 0o640) -> None:
    """Write ``content`` to ``path`` atomically and durably."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_move(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (replacing it), durably, across filesystems if need be."""
    move_into(source, target)
    fsync_directory(target.parent)


def move_into(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (replacing it) atomically, across filesystems if need
    be; durable once the caller has synced ``target``'s folder (one sync for many moves)."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        _copy_then_rename(source, target)
        source.unlink()
        fsync_directory(source.parent)


def atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (replacing it) atomically and durably, mode kept."""
    _copy_then_rename(source, target)
    fsync_directory(target.parent)


def _copy_then_rename(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copymode(source, partial)
        owner = source.stat()
        if os.geteuid() == 0:  # only root can give a file away; keep the owner it was given
            os.chown(partial, owner.st_uid, owner.st_gid)
        os.rename(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def file_error_reason(error: OSError) -> str:
    """Why a file a user named could not be read or written, in the words commands print."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, PermissionError):
        return "permission denied"
    reason = error.strerror or str(error)
    return f"{reason[:1].lower()}{reason[1:]}"
