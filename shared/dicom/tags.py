"""DICOM tags: every element of a file as text, and one value (edits: :mod:`tag_edits`).

Values are decoded with the file's Specific Character Set. Pixel data and other bulk data
(binary values over :data:`BULK_DATA_MIN_LENGTH` bytes) are listed as dcmdump lists them, by
VR and length, and never read to do so; sequence items are listed where they begin, at their
depth.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Literal

from pydicom.datadict import dictionary_keyword, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from shared.dicom.files import DicomFileError, read_deferred

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULK_DATA_MIN_LENGTH = 1024
PIXEL_DATA_TAGS = frozenset(
    Tag(keyword) for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
)
ITEM_TAG = "(FFFE,E000)"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_TAG_TEXT = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")


class TagError(Exception):
    """A tag that is absent or unknown, or a file that cannot be read or written."""


@dataclass(frozen=True)
class DataElementText:
    """One entry of a listing, as text.

    ``kind`` is ``element``; ``bulk``, a value listed by its length rather than shown:
    ``length`` in bytes (None when undefined, as for encapsulated pixel data, whose
    ``fragments`` are counted instead); or ``item``, where a sequence item begins. ``depth``
    is the entry's level in the tree dcmdump draws: a sequence's items are one level deeper
    than the sequence, and the items' elements two.
    """

    tag: str
    keyword: str
    vr: str
    value: str
    depth: int = 0
    kind: Literal["element", "bulk", "item"] = "element"
    length: int | None = None
    fragments: int | None = None


def parse_tag(text: str) -> BaseTag:
    """A tag from a keyword (``PatientName``) or a number (``0010,0010``, ``(0010,0010)``)."""
    text = text.strip()
    number = _TAG_TEXT.match(text) or re.match(r"^([0-9A-Fa-f]{4})([0-9A-Fa-f]{4})$", text)
    if number:
        return Tag(int(number[1], 16), int(number[2], 16))
    found = tag_for_keyword(text)
    if found is None:
        raise TagError(f"unknown tag {text!r}: give a DICOM keyword or GGGG,EEEE")
    return Tag(found)


def load_tags(path: Path | str) -> list[DataElementText]:
    """Every data element of the file, file meta information first, sequences expanded with
    an ``item`` entry where each item begins; bulk values are ``bulk`` entries with their
    length, read from the file's structure and never loaded."""
    dataset = _read_listing(path)
    elements = list(_describe(dataset.file_meta, 0, dataset))
    elements.extend(_describe(dataset, 0, dataset))
    return elements


def get_tag(source: Path | str | Dataset, group: int, element: int) -> DataElementText:
    """The top-level element ``(group,element)``, wherever it is in the file (pixel data
    included, as a ``bulk`` entry with its length); :class:`TagError` when the file lacks it."""
    dataset = source if isinstance(source, Dataset) else _read_listing(source)
    tag = Tag(group, element)
    holder = dataset.file_meta if tag.group == 0x0002 else dataset
    if tag not in holder:
        raise TagError(f"{tag_name(tag)} is not in the file")
    raw = holder.get_item(tag, keep_deferred=True)
    if _is_bulk(tag, raw):
        return _bulk(raw, 0, dataset)
    return _text(holder, tag, 0)


def get_tag_by_keyword(source: Path | str | Dataset, keyword: str) -> DataElementText:
    """The top-level element named by its DICOM keyword, e.g. ``PatientName``."""
    tag = parse_tag(keyword)
    return get_tag(source, tag.group, tag.element)


def _read_listing(path: Path | str) -> FileDataset:
    """The whole file, with every value over :data:`BULK_DATA_MIN_LENGTH` left on disk."""
    try:
        return read_deferred(path, BULK_DATA_MIN_LENGTH)
    except DicomFileError as error:
        raise TagError(str(error)) from None


def _describe(dataset: Dataset, depth: int, source: Dataset) -> Iterator[DataElementText]:
    for tag in sorted(dataset.keys()):
        raw = dataset.get_item(tag, keep_deferred=True)  # a deferred value stays on disk
        if _is_bulk(Tag(tag), raw):
            yield _bulk(raw, depth, source)
            continue
        described = _text(dataset, Tag(tag), depth)
        yield described
        sequence = dataset[tag].value if described.vr == "SQ" else None
        if isinstance(sequence, Sequence):
            for number, item in enumerate(sequence, start=1):
                count = f"{len(item)} element{'s' if len(item) != 1 else ''}"
                summary = f"<item {number} of {len(sequence)}, {count}>"
                yield DataElementText(ITEM_TAG, "Item", "", summary, depth + 1, "item")
                yield from _describe(item, depth + 2, source)


def _is_bulk(tag: BaseTag, element: DataElement | RawDataElement) -> bool:
    if tag in PIXEL_DATA_TAGS:
        return True
    if _vr(tag, element) not in BINARY_VRS:
        return False
    length = _length(element)
    return length is None or length > BULK_DATA_MIN_LENGTH


def _bulk(element: DataElement | RawDataElement, depth: int, source: Dataset) -> DataElementText:
    tag = Tag(element.tag)
    keyword = "" if tag.is_private else dictionary_keyword(tag)
    vr, length = _vr(tag, element), _length(element)
    if length is None and tag in PIXEL_DATA_TAGS:
        vr = "OB"  # encapsulated pixel data is OB (PS3.5 A.4), whatever the file says
    if length is not None:
        value = f"<{length} byte{'s' if length != 1 else ''}>"
        return DataElementText(str(tag), keyword, vr, value, depth, "bulk", length)
    fragments = _fragments(element, source)
    if fragments is None:
        value = "<encapsulated: unreadable fragments, undefined length>"
    else:
        value = f"<encapsulated: {fragments} fragment{'s' if fragments != 1 else ''}, "
        value += "undefined length>"
    return DataElementText(str(tag), keyword, vr, value, depth, "bulk", None, fragments)


def _vr(tag: BaseTag, element: DataElement | RawDataElement) -> str:
    """The element's VR; in an implicit VR file, the dictionary's (pixel data is OW there)."""
    if element.VR:
        return str(element.VR)
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return "OW" if vr == "OB or OW" else vr


def _length(element: DataElement | RawDataElement) -> int | None:
    """The value's length in bytes, known without reading a deferred value; None if undefined."""
    if isinstance(element, RawDataElement):
        length = int(element.length or 0)
        return None if length == _UNDEFINED_LENGTH else length
    if element.is_undefined_length:
        return None
    return len(element.value) if isinstance(element.value, bytes) else 0


def _fragments(element: DataElement | RawDataElement, source: Dataset) -> int | None:
    """The fragments of encapsulated pixel data, counted by walking the item headers."""
    try:
        if isinstance(element.value, bytes):
            return _count_fragments(BytesIO(element.value))
        if not isinstance(element, RawDataElement) or not getattr(source, "filename", None):
            return None
        # Opened as pydicom opens the file for a deferred value, whatever the file's layout.
        with source.fileobj_type(source.filename, "rb") as handle:
            handle.seek(element.value_tell)
            return _count_fragments(handle)
    except (OSError, ValueError, EOFError, struct.error):
        return None


def _count_fragments(stream: BinaryIO | BytesIO) -> int:
    parse_basic_offsets(stream)  # the first item is the Basic Offset Table, not a fragment
    return int(parse_fragments(stream)[0])


def _text(dataset: Dataset, tag: BaseTag, depth: int) -> DataElementText:
    keyword = dictionary_keyword(tag) if not tag.is_private else ""
    try:
        element = dataset[tag]
    except Exception as error:  # a hostile value must not end the whole listing
        return DataElementText(str(tag), keyword, "??", f"<unreadable: {error}>", depth)
    return DataElementText(
        str(tag), element.keyword or keyword, element.VR, _value_text(element), depth
    )


def _value_text(element: DataElement) -> str:
    value = element.value
    if element.VR == "SQ":
        return f"<{len(value)} item{'s' if len(value) != 1 else ''}>"
    if value is None:
        return ""
    if isinstance(value, bytes):
        if element.VR in BINARY_VRS:
            return value.hex(" ")
        return value.decode("ascii", errors="replace")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(part) for part in value)
    return str(value)


def tag_name(tag: BaseTag) -> str:
    """A tag as messages name it: ``(0010,0010) PatientName``."""
    keyword = "" if tag.is_private else dictionary_keyword(tag)
    return f"{tag} {keyword}".strip()
