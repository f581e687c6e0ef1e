"""Where a DICOM file's encoding begins.

PS3.10 puts a 128-byte preamble and ``DICM`` before the file meta information. Some writers
leave the preamble out and begin with ``DICM``, or leave both out and begin with the file
meta information or the data set itself; dcmdump reads those, and so does the toolkit. A file
that begins in none of these ways is not DICOM, however pydicom's ``force`` would read it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Literal

from pydicom.valuerep import STANDARD_VR

PREFIX = b"DICM"
PREAMBLE_LENGTH = 128
Layout = Literal["part10", "prefix-first", "bare"]
_FIRST_GROUPS = (0x0002, 0x0008)  # file meta information, or a data set's first group
_VRS = frozenset(str(vr).encode("ascii") for vr in STANDARD_VR)


def file_layout(path: Path) -> Layout | None:
    """``part10`` (preamble and prefix), ``prefix-first`` (``DICM`` with no preamble),
    ``bare`` (a data set, or its file meta information, at once), or None: not DICOM."""
    with path.open("rb") as handle:
        head = handle.read(PREAMBLE_LENGTH + len(PREFIX))
    if head[PREAMBLE_LENGTH:] == PREFIX:
        return "part10"
    if head.startswith(PREFIX) and _starts_with_an_element(head[len(PREFIX) :], (0x0002,)):
        return "prefix-first"
    if _starts_with_an_element(head):
        return "bare"
    return None


def _starts_with_an_element(head: bytes, groups: tuple[int, ...] = _FIRST_GROUPS) -> bool:
    """An element of one of ``groups`` in little endian: explicit VR (a VR follows the tag)
    or implicit VR (an even length that a header value could have follows it)."""
    if len(head) < 8:
        return False
    group, _ = struct.unpack_from("<HH", head)
    if group not in groups:
        return False
    if head[4:6] in _VRS:
        return True
    length: int = struct.unpack_from("<I", head, 4)[0]
    return length % 2 == 0 and length < 0x10000


class AfterPrefix:
    """A ``prefix-first`` file read as if it began with its file meta information, as a
    ``bare`` one does. pydicom reopens a file through its reader's class to read a deferred
    value, so positions stay right for those reads too."""

    def __init__(self, name: str, mode: str = "rb") -> None:
        self.name = name
        self._file = open(name, "rb")  # noqa: SIM115 - closed by close(), as a file is
        self._file.seek(len(PREFIX))

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            offset += len(PREFIX)
        return self._file.seek(offset, whence) - len(PREFIX)

    def tell(self) -> int:
        return self._file.tell() - len(PREFIX)

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> AfterPrefix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def data_set_offset(handle: BinaryIO) -> int:
    """Where a Part 10 file's data set starts: after the preamble, the prefix and the File
    Meta Information group, whose length its first element gives (leaves ``handle`` there)."""
    handle.seek(PREAMBLE_LENGTH + len(PREFIX))
    group_length = struct.unpack("<HH2sHL", handle.read(12))[4]
    offset = PREAMBLE_LENGTH + len(PREFIX) + 12 + int(group_length)
    handle.seek(offset)
    return offset
