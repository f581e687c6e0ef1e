"""Check that a DICOM file's data set is whole: every length fits, every sequence ends.

pydicom reads leniently: a value cut short by the end of the file is returned short, without
an error. A receiver must not answer Success for data it cannot decode, so before that answer
the element structure is walked (values are skipped, not read): each element's length must
fit inside its container, each undefined-length sequence, item and encapsulated pixel data
must be closed by its delimiter, and nesting is bounded. Pixel Data must be encapsulated
(undefined length, in fragments) exactly when the transfer syntax is an encapsulated one:
native pixels labelled JPEG, or fragments labelled Explicit VR Little Endian, cannot be
decoded as labelled. The walk also picks up the SOP Instance, Study Instance and Series
Instance UIDs, which filing needs, and the raw values of the top-level elements the caller
asks for (``capture``), so that filing need not read the file again. Deflated data sets are
walked as they inflate, in a bounded window (:mod:`shared.dicom.inflate`), up to a limit on
their inflated size.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID

from shared.dicom.inflate import DEFLATED, InflatedStream, InflateLimitError, inflated_length
from shared.dicom.preamble import data_set_offset

UNDEFINED = 0xFFFFFFFF
ITEM = (0xFFFE, 0xE000)
ITEM_END = (0xFFFE, 0xE00D)
SEQUENCE_END = (0xFFFE, 0xE0DD)
SOP_INSTANCE_UID = (0x0008, 0x0018)
STUDY_INSTANCE_UID = (0x0020, 0x000D)
SERIES_INSTANCE_UID = (0x0020, 0x000E)
KEY_UIDS = (SOP_INSTANCE_UID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID)
PIXEL_DATA = (0x7FE0, 0x0010)
MAX_DEPTH = 32
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR"}
LONG_VRS |= {b"UT", b"UV"}
SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO"}
SHORT_VRS |= {b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
MAX_INFLATED = 4 * 2**30
MAX_UID_BYTES = 256  # a UID is at most 64 characters; a longer value is only noted, not read
MAX_CAPTURED = 1024  # bytes of a captured value; a longer one leaves the capture incomplete
IN_MEMORY = 4 * 2**20  # bytes of a file read whole to be walked; a larger one walked on disk


class EncodingError(ValueError):
    """The data set cannot be decoded; the message says where and why."""


@dataclass(frozen=True)
class Captured:
    """Top-level elements as encoded: tag to (VR, or None when implicit; the value's bytes)."""

    implicit: bool
    little: bool
    elements: dict[int, tuple[bytes | None, bytes]]


@dataclass(frozen=True)
class DataSetFacts:
    """The UIDs a data set names at its top level ('' when absent), as raw text; and the
    elements asked for, or None when one of them was too long or a sequence."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    captured: Captured | None = None


def check_file(
    path: Path,
    transfer_syntax: str | None = None,
    max_inflated: int = MAX_INFLATED,
    capture: frozenset[int] = frozenset(),
) -> DataSetFacts:
    """Walk the data set of a Part 10 file; return its key UIDs or raise.

    ``transfer_syntax``: the one its File Meta Information names, when the caller wrote that
    meta itself and knows it (the receiver), which spares decoding it again. A deflated data
    set is walked as it inflates, holding a bounded window; one that inflates beyond
    ``max_inflated`` bytes is refused.
    """
    syntax = UID(transfer_syntax or read_file_meta_info(path).TransferSyntaxUID)
    # Unknown (private) syntaxes are never negotiated; if one were, nothing is assumed of it.
    encapsulated = syntax.is_encapsulated if syntax.is_transfer_syntax else None
    with path.open("rb") as handle:
        start = data_set_offset(handle)
        if syntax in DEFLATED:
            return _check_deflated(handle, max_inflated, capture)
        end = handle.seek(0, io.SEEK_END)
        walked: BinaryIO = handle
        if end <= IN_MEMORY:
            # Walked in memory: stepping over each value is then no system call.
            handle.seek(0)
            walked = io.BytesIO(handle.read(end))
        walked.seek(start)
        little, implicit = syntax.is_little_endian, syntax.is_implicit_VR
        return _Walker(walked, little, implicit, encapsulated, capture).data_set(end)


def check_encoded(data: bytes, implicit: bool) -> None:
    """Walk a little endian data set held in memory (a query's identifier); raise
    :class:`EncodingError` when it cannot be decoded. No element is required."""
    _Walker(io.BytesIO(data), True, implicit, False, frozenset()).elements(len(data))


def _check_deflated(handle: BinaryIO, limit: int, capture: frozenset[int]) -> DataSetFacts:
    # Two passes over the stream, neither holding it: its length first (each element's
    # length is judged against the end), then the walk.
    start = handle.tell()
    try:
        length = inflated_length(handle, limit)
        handle.seek(start)
        stream = InflatedStream(handle, limit)
        walker = _Walker(io.BufferedReader(stream), True, False, False, capture)
        return walker.data_set(length)
    except InflateLimitError as error:
        raise EncodingError(str(error)) from None
    except zlib.error as error:
        raise EncodingError(f"the deflated data set cannot be inflated: {error}") from None


class _Walker:
    def __init__(
        self,
        handle: BinaryIO,
        little: bool,
        implicit: bool,
        encapsulated: bool | None,
        capture: frozenset[int],
    ) -> None:
        self._handle = handle
        self._order = "<" if little else ">"
        self._implicit = implicit
        self._encapsulated = encapsulated
        self._uids: dict[tuple[int, int], str] = {}
        self._capture = capture
        self._captured: dict[int, tuple[bytes | None, bytes]] | None = {}

    def data_set(self, end: int) -> DataSetFacts:
        start = self._handle.tell()
        if not self._implicit and start + 6 <= end:
            # Like pydicom, accept implicit VR data under an explicit VR transfer syntax.
            self._handle.seek(start + 4)
            if self._handle.read(2) not in LONG_VRS | SHORT_VRS:
                self._implicit = True
            self._handle.seek(start)
        self._elements(end, depth=0, until_item_end=False)
        if not self._uids.get(SOP_INSTANCE_UID):
            raise EncodingError("the data set has no SOP Instance UID (0008,0018)")
        captured = None
        if self._captured is not None:
            little = self._order == "<"
            captured = Captured(self._implicit, little, self._captured)
        sop, study, series = (self._uids.get(tag, "") for tag in KEY_UIDS)
        return DataSetFacts(sop, study, series, captured)

    def elements(self, end: int) -> None:
        self._elements(end, depth=0, until_item_end=False)

    def _read(self, size: int, what: str) -> bytes:
        chunk = self._handle.read(size)
        if len(chunk) != size:
            raise EncodingError(f"the file ends inside {what} at byte {self._handle.tell()}")
        return chunk

    def _tag(self) -> tuple[int, int]:
        group, element = struct.unpack(self._order + "HH", self._read(4, "an element tag"))
        return int(group), int(element)

    def _elements(self, end: int, depth: int, until_item_end: bool) -> None:
        if depth > MAX_DEPTH:
            raise EncodingError(f"sequences nested deeper than {MAX_DEPTH}")
        while self._handle.tell() < end:
            tag = self._tag()
            if tag == ITEM_END and until_item_end:
                self._read(4, "an item delimiter")
                return
            vr, length = self._header(tag)
            name = f"element ({tag[0]:04X},{tag[1]:04X})"
            wanted = depth == 0 and (tag[0] << 16 | tag[1]) in self._capture
            if wanted and (vr == b"SQ" or length == UNDEFINED or length > MAX_CAPTURED):
                self._captured = None  # not a plain value to hand on: filing reads the file
            if tag == PIXEL_DATA and depth == 0:
                self._check_pixel_data(length)
            if length == UNDEFINED:
                if vr in (b"SQ", b"UN", None):
                    self._items(end, depth + 1, name)
                elif tag == PIXEL_DATA:
                    self._fragments(end, name)
                else:
                    raise EncodingError(f"{name} has an undefined length but VR {vr!r}")
                continue
            value_start = self._handle.tell()
            if value_start + length > end:
                raise EncodingError(
                    f"{name} claims {length} bytes but only {end - value_start} remain"
                )
            if vr == b"SQ":
                self._items(value_start + length, depth + 1, name, defined=True)
            elif wanted and self._captured is not None:
                value = self._read(length, name)
                self._captured[tag[0] << 16 | tag[1]] = (vr, value)
                if tag in KEY_UIDS:
                    self._uids[tag] = value.rstrip(b"\0 ").lstrip(b" ").decode("ascii", "replace")
            elif tag in KEY_UIDS and depth == 0 and length <= MAX_UID_BYTES:
                value = self._read(length, name).rstrip(b"\0 ").lstrip(b" ")
                self._uids[tag] = value.decode("ascii", "replace")
            elif tag in KEY_UIDS and depth == 0:
                self._uids[tag] = "?" * MAX_UID_BYTES  # too long to be a UID; not read
                self._handle.seek(value_start + length)
            else:
                self._handle.seek(value_start + length)
        if until_item_end:
            raise EncodingError("an item of undefined length is never closed")

    def _check_pixel_data(self, length: int) -> None:
        if self._encapsulated is None:
            return
        if self._encapsulated and length != UNDEFINED:
            raise EncodingError(
                "Pixel Data is native (a defined length) but the transfer syntax is an "
                "encapsulated one: it cannot be decoded as labelled"
            )
        if not self._encapsulated and length == UNDEFINED:
            raise EncodingError(
                "Pixel Data is encapsulated (in fragments) but the transfer syntax is a "
                "native one: it cannot be decoded as labelled"
            )

    def _header(self, tag: tuple[int, int]) -> tuple[bytes | None, int]:
        if self._implicit or tag[0] == 0xFFFE:
            return None, int(struct.unpack(self._order + "L", self._read(4, "a length"))[0])
        vr = self._read(2, "a value representation")
        if vr in LONG_VRS:
            self._read(2, "reserved bytes")
            return vr, int(struct.unpack(self._order + "L", self._read(4, "a length"))[0])
        if vr in SHORT_VRS:
            return vr, int(struct.unpack(self._order + "H", self._read(2, "a length"))[0])
        raise EncodingError(f"element ({tag[0]:04X},{tag[1]:04X}) has an unknown VR {vr!r}")

    def _items(self, end: int, depth: int, name: str, defined: bool = False) -> None:
        # An undefined-length UN holds implicit VR little endian data (PS3.5 6.2.2).
        while True:
            if defined and self._handle.tell() >= end:
                return
            tag = self._tag()
            length = int(struct.unpack(self._order + "L", self._read(4, "a length"))[0])
            if tag == SEQUENCE_END and not defined:
                return
            if tag != ITEM:
                raise EncodingError(f"{name}: expected an item, found ({tag[0]:04X},{tag[1]:04X})")
            if length == UNDEFINED:
                self._elements(end, depth, until_item_end=True)
            elif self._handle.tell() + length > end:
                raise EncodingError(f"{name}: an item claims {length} bytes past its end")
            else:
                self._elements(self._handle.tell() + length, depth, until_item_end=False)

    def _fragments(self, end: int, name: str) -> None:
        while True:
            tag = self._tag()
            length = int(struct.unpack(self._order + "L", self._read(4, "a length"))[0])
            if tag == SEQUENCE_END:
                return
            if tag != ITEM or self._handle.tell() + length > end:
                raise EncodingError(f"{name}: a pixel data fragment is cut short or malformed")
            self._handle.seek(self._handle.tell() + length)
