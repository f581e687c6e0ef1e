"""The picture size a compressed frame declares, read from its first bytes, before decoding.

A decoder allocates what the codestream's own header asks for, whatever the data set's Rows
and Columns say: a 64 x 64 image whose JPEG 2000 SIZ marker declares 40000 x 40000 makes
openjpeg reserve gigabytes. Reading the header first lets the toolkit refuse such a frame with
a reason, against its pixel limit, without decoding anything.

JPEG 2000 (a raw codestream or a JP2 file): the SIZ marker segment (ISO/IEC 15444-1 A.5.1).
JPEG, JPEG lossless and JPEG-LS: the first start-of-frame segment (ITU T.81 B.2.2, T.87).
RLE carries no size of its own; its segments are bounded by the data set's.
"""

from __future__ import annotations

import struct

J2K_SIZ = b"\xff\x51"
J2K_START = b"\xff\x4f\xff\x51"
JPEG_START = b"\xff\xd8"
# Start-of-frame markers: baseline, extended, progressive, lossless, their arithmetic-coded
# forms, and JPEG-LS (0xF7). 0xC4, 0xC8 and 0xCC are other segments in the same range.
SOF_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7})
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length


def declared_size(head: bytes) -> tuple[int, int] | None:
    """(columns, rows) the codestream starting ``head`` declares; None when it declares none
    that can be read there (another kind of stream, or a header past ``head``)."""
    if head.startswith(J2K_START):
        return _siz(head, 2)
    if head[4:8] == b"jP  " or b"jp2c" in head[:4096]:  # a JP2 file: its codestream box
        start = head.find(J2K_START)
        return _siz(head, start + 2) if start >= 0 else None
    if head.startswith(JPEG_START):
        return _start_of_frame(head)
    return None


def _siz(head: bytes, at: int) -> tuple[int, int] | None:
    # SIZ: marker, Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz (big endian).
    if head[at : at + 2] != J2K_SIZ or len(head) < at + 22:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", head, at + 6)
    return max(xsiz - xosiz, 0), max(ysiz - yosiz, 0)


def _start_of_frame(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in STANDALONE:
            at += 2
            continue
        (length,) = struct.unpack_from(">H", head, at + 2)
        if marker in SOF_MARKERS:
            if len(head) < at + 9:
                return None
            rows, columns = struct.unpack_from(">HH", head, at + 5)
            return columns, rows
        if marker == 0xDA:  # start of scan before any frame header
            return None
        at += 2 + length
    return None
