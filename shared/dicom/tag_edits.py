"""Edits to a DICOM file's tags, each validated against the tag's VR, VM and the file's
character set, written atomically. The pixel data and the transfer syntax are never touched:
the file meta information and the elements describing the pixel data are not editable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import validate_value

from shared.dicom.files import DicomFileError, read_dataset, replace_atomically
from shared.dicom.tags import BINARY_VRS, TagError, parse_tag, tag_name
from shared.files import atomic_copy, file_error_reason

# Image Pixel attributes that describe how the pixel data is laid out: editing one would make
# the untouched pixel data unreadable.
PIXEL_LAYOUT_TAGS = frozenset(
    Tag(keyword)
    for keyword in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    )
)
_INTEGER_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})  # may hold a backslash; never multi-valued
_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})


class EditError(TagError):
    """An edit the file cannot take: the tag is not editable, or the value does not fit it."""


@dataclass(frozen=True)
class TagChange:
    """Set ``tag`` to ``value`` (backslash separates multiple values), or remove it when None.

    ``vr`` is needed only for private or unknown tags that the file does not have yet.
    """

    tag: BaseTag
    value: str | None
    vr: str | None = None


def write_tags(
    path: Path | str,
    changes: Iterable[TagChange],
    out: Path | str | None = None,
    *,
    backup: bool = False,
) -> Path:
    """Apply ``changes`` and write the result atomically to ``out`` (default: in place).

    The pixel data and the transfer syntax are written back exactly as read. With ``backup``,
    a file edited in place is first copied, durably, to ``FILE.bak`` (see :func:`backup_of`).
    """
    source = Path(path)
    target = Path(out) if out is not None else source
    dataset = _read(source, with_pixels=True)
    # Decode every value now, so a change of character set re-encodes all of them on write.
    for _ in dataset.iterall():
        pass
    for change in changes:
        _apply(dataset, change)
    if backup and target.resolve() == source.resolve():
        try:
            atomic_copy(source, backup_of(source))
        except OSError as error:
            reason = file_error_reason(error)
            raise TagError(f"cannot keep a backup in {backup_of(source)}: {reason}") from None
    with _strict_writing():
        try:
            replace_atomically(target, lambda temporary: dataset.save_as(temporary))
        except (UnicodeError, ValueError, TypeError) as error:
            raise TagError(f"cannot write {target}: {error}") from None
        except OSError as error:
            raise TagError(f"cannot write {target}: {file_error_reason(error)}") from None
    return target


def backup_of(path: Path) -> Path:
    """Where :func:`write_tags` keeps the original of a file it edits in place."""
    return path.with_name(f"{path.name}.bak")


def _read(path: Path | str, *, with_pixels: bool = False) -> Dataset:
    try:
        return read_dataset(path, with_pixels=with_pixels)
    except DicomFileError as error:
        raise TagError(str(error)) from None


def _apply(dataset: Dataset, change: TagChange) -> None:
    tag, name = change.tag, tag_name(change.tag)
    if tag.group == 0x0002:
        raise EditError(f"{name} is file meta information; the transfer syntax is not editable")
    if tag.group == 0x7FE0 or tag in PIXEL_LAYOUT_TAGS:
        raise EditError(f"{name} describes the pixel data and is not editable")
    if change.value is None:
        if tag not in dataset:
            raise EditError(f"cannot remove {name}: it is not in the file")
        del dataset[tag]
        return
    vr = _vr_for(dataset, change)
    value = _typed_value(tag, vr, change.value)
    if vr in _TEXT_VRS and not change.value.isascii():
        _check_encodable(dataset, name, change.value)
    dataset[tag] = DataElement(tag, vr, value)


def _check_encodable(dataset: Dataset, name: str, text: str) -> None:
    if "SpecificCharacterSet" not in dataset:
        # The default repertoire is ASCII, so every existing value is valid UTF-8 as well.
        dataset.SpecificCharacterSet = "ISO_IR 192"
        return
    charset = dataset.SpecificCharacterSet
    names = list(charset) if isinstance(charset, MultiValue) else [charset]
    try:
        with _strict_writing():
            encode_string(text, convert_encodings(names))
    except (UnicodeError, LookupError):
        shown = "\\".join(str(n) for n in names)
        raise EditError(
            f"{name}: {text!r} cannot be encoded in the file's character set {shown}"
        ) from None


def _vr_for(dataset: Dataset, change: TagChange) -> str:
    name = tag_name(change.tag)
    if change.vr is not None:
        vr = change.vr.upper()
    elif change.tag in dataset:
        vr = str(dataset[change.tag].VR)
    else:
        try:
            vr = dictionary_VR(change.tag)
        except KeyError:
            raise EditError(f"{name} is not in the DICOM dictionary: give its VR") from None
    if vr == "SQ":
        raise EditError(f"{name} is a sequence and cannot be set from text")
    if vr in BINARY_VRS:
        raise EditError(f"{name} holds binary data ({vr}) and cannot be set from text")
    if " or " in vr or len(vr) != 2:
        raise EditError(f"{name} has VR {vr!r}: give one VR explicitly")
    return vr


def _typed_value(tag: BaseTag, vr: str, text: str) -> Any:
    name = tag_name(tag)
    parts = [text] if vr in _SINGLE_TEXT_VRS else text.split("\\")
    try:
        multiplicity = dictionary_VM(tag)
    except KeyError:
        multiplicity = "1-n"
    if multiplicity == "1" and len(parts) > 1:
        raise EditError(f"{name} takes one value, got {len(parts)}")
    values: list[Any] = []
    for part in parts:
        try:
            if vr in _INTEGER_VRS:
                values.append(int(part))
            elif vr in _FLOAT_VRS:
                values.append(float(part))
            elif vr == "AT":
                values.append(parse_tag(part))
            else:
                values.append(part)
            validate_value(vr, values[-1], config.RAISE)
        except (ValueError, TagError) as error:
            raise EditError(f"invalid value {part!r} for {name} (VR {vr}): {error}") from None
    return values[0] if len(values) == 1 else values


class _strict_writing:
    """Make pydicom refuse, rather than replace, characters the character set cannot encode."""

    def __enter__(self) -> None:
        self._previous = config.settings.writing_validation_mode
        config.settings.writing_validation_mode = config.RAISE

    def __exit__(self, *exc: object) -> None:
        config.settings.writing_validation_mode = self._previous
