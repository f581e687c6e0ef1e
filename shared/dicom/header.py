"""A DICOM file's header, read with memory bounded by design.

Header work (filing, indexing) needs the data set up to its pixel data and nothing more. Read
here: elements before the pixel data; a value longer than ``max_value`` bytes (a huge private
element, an icon, an over-long text) is skipped on disk and left out of the header; a
Deflated Explicit VR Little Endian data set is inflated as a stream, only as far as the header
goes and never beyond ``max_inflated`` bytes (:mod:`shared.dicom.inflate`), where pydicom
would inflate the whole data set into memory. Whatever the file's size, reading its header
holds a few megabytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from shared.dicom.inflate import DEFLATED, InflatedStream, InflateLimitError
from shared.dicom.preamble import PREAMBLE_LENGTH, PREFIX, data_set_offset

MAX_VALUE = 1 << 20  # bytes of one value kept in a header
META_PEEK = 4096  # bytes read to see a Part 10 file's File Meta Information whole
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"})
_LONG_VRS |= {b"UR", b"UT", b"UV"}
MAX_INFLATED = 4 * 2**30
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
TagList = Sequence[int | str | tuple[int, int]]


class HeaderReadError(ValueError):
    """The file's header cannot be read; the message says why."""


def read_header(
    path: Path,
    *,
    specific_tags: TagList | None = None,
    max_value: int = MAX_VALUE,
    max_inflated: int = MAX_INFLATED,
) -> Dataset:
    """The data set of the Part 10 file ``path`` up to its pixel data, its File Meta
    Information as ``file_meta``; only ``specific_tags`` when given."""
    dataset: Dataset
    try:
        with path.open("rb") as handle:
            if _plainly_not_deflated(handle):
                dataset = pydicom.dcmread(
                    handle,
                    defer_size=max_value,
                    stop_before_pixels=True,
                    specific_tags=_tags(specific_tags),
                )
            else:
                dataset = _read_meta_first(path, handle, specific_tags, max_value, max_inflated)
    except InflateLimitError as error:
        raise HeaderReadError(str(error)) from None
    except zlib.error as error:
        raise HeaderReadError(f"the deflated data set cannot be inflated: {error}") from None
    except InvalidDicomError as error:
        raise HeaderReadError(f"not a DICOM file: {error}") from None
    # pydicom reports truncated or malformed encodings as any of these.
    except (EOFError, ValueError, struct.error, KeyError, TypeError, OverflowError) as error:
        raise HeaderReadError(f"malformed DICOM: {type(error).__name__}: {error}") from None
    except RecursionError:  # pydicom reads nested sequences by recursion
        raise HeaderReadError("sequences nested too deep to read") from None
    _drop_skipped(dataset)
    return dataset


def _plainly_not_deflated(handle: BinaryIO) -> bool:
    """Whether the Part 10 file's File Meta Information, read as bytes, plainly names no
    deflated transfer syntax: preamble and prefix, then group 0002 elements (explicit VR
    little endian, as PS3.10 writes them) ending within the first :data:`META_PEEK` bytes,
    where a group of another number begins. Anything less plain is read the careful way,
    the meta first. Leaves ``handle`` at the start."""
    head = handle.read(META_PEEK)
    handle.seek(0)
    at = PREAMBLE_LENGTH + len(PREFIX)
    if head[PREAMBLE_LENGTH:at] != PREFIX:
        return False
    start = at
    while at + 8 <= len(head):
        group, vr = struct.unpack_from("<H", head, at)[0], head[at + 4 : at + 6]
        if group != 0x0002:
            meta = head[start:at]
            return not any(syntax.encode() in meta for syntax in DEFLATED)
        if vr in _LONG_VRS:
            if at + 12 > len(head):
                return False
            (length,) = struct.unpack_from("<L", head, at + 8)
            at += 12 + length
        else:
            (length,) = struct.unpack_from("<H", head, at + 6)
            at += 8 + length
    return False


def _read_meta_first(
    path: Path,
    handle: BinaryIO,
    specific_tags: TagList | None,
    max_value: int,
    max_inflated: int,
) -> Dataset:
    """The File Meta Information first, then the data set: inflated as a stream when the
    meta names a deflated syntax, else read by pydicom."""
    meta = read_file_meta_info(path)
    if UID(meta.get("TransferSyntaxUID", "")) not in DEFLATED:
        return pydicom.dcmread(
            handle,
            defer_size=max_value,
            stop_before_pixels=True,
            specific_tags=_tags(specific_tags),
        )
    data_set_offset(handle)
    stream = io.BufferedReader(InflatedStream(handle, max_inflated))
    dataset = read_dataset(
        stream,
        is_implicit_VR=False,
        is_little_endian=True,
        stop_when=_at_pixel_data,
        defer_size=max_value,
        # The character set, as dcmread adds it: the values cannot be decoded without it.
        specific_tags=_tags(None if specific_tags is None else [*specific_tags, 0x00080005]),
    )
    dataset.file_meta = meta
    dataset.set_original_encoding(False, True, dataset.get("SpecificCharacterSet"))
    return dataset


def _tags(tags: TagList | None) -> list[BaseTag | int] | None:
    """Tags given by number, pair or keyword, as pydicom's readers take them."""
    return None if tags is None else [Tag(tag) for tag in tags]


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in PIXEL_TAGS


def _drop_skipped(dataset: Dataset) -> None:
    """Leave out the values that were skipped for their size, in every item too: a header
    never reaches back into the file (which may be gone, or deflated) for them."""
    # The raw elements as read: every public accessor would fetch a skipped value from disk.
    raw = dataset._dict
    for tag, element in list(raw.items()):
        if isinstance(element, RawDataElement) and element.value is None and element.length:
            del raw[tag]
        elif element.VR == "SQ":
            for item in dataset[tag].value or []:
                _drop_skipped(item)
