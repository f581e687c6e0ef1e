"""A header in the DICOM JSON model (PS3.18 F.2), encoded straight from the bytes as read.

The index stores every instance's header as DICOM JSON. pydicom's ``to_json_dict`` first turns
each element into a full Python value (a ``DSfloat``, a ``PersonName``, a validated
``MultiValue``) and then into JSON, which makes it the indexer's hot spot (about 2 ms of an
MR image's header). Here each element still in raw form goes from its bytes to its JSON value
in one step, with pydicom's rules where they matter (trailing padding, character sets, numbers
in IS and DS); an element pydicom has already converted is encoded by pydicom. The result is
the same as ``to_json_dict`` with ``suppress_invalid_tags``: an element whose value cannot be
read as its VR says is left out. Binary values up to ``bulk_threshold`` bytes are inlined in
base64 and longer ones left out (the file holds them).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from pydicom import charset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

JSON = dict[str, Any]
BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
NUMBERS = {"FL": "f", "FD": "d", "SL": "l", "SS": "h", "UL": "L", "US": "H", "SV": "q", "UV": "Q"}
SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
# Text in the data set's character set; the others are in the default repertoire.
ENCODED = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
TEXT_DELIMITERS = {0x0D, 0x0A, 0x09, 0x0C}  # what resets ISO 2022 in LT, ST, UT
PN_DELIMITERS = {0x5E, 0x3D, 0x5C}
DEFAULT_DELIMITERS = {0x5C}
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


class _Invalid(ValueError):
    """A value that cannot be read as its VR: the element is left out, as pydicom does."""


def header_json(dataset: Dataset, bulk_threshold: int) -> JSON:
    """``dataset`` (as read, up to its pixel data) in the DICOM JSON model."""
    encodings = _encodings(dataset)
    little = dataset.original_encoding[1] is not False
    found: JSON = {}
    for tag, element in dataset._dict.items():  # raw elements, left unconverted
        key = f"{int(tag):08X}"
        try:
            if isinstance(element, RawDataElement) and _plain(element):
                found[key] = _raw(dataset, element, encodings, little, bulk_threshold)
            else:  # pydicom's own reading: private dictionaries, UN made known, ambiguous VRs
                found[key] = dataset[tag].to_json_dict(_no_bulk_uri, bulk_threshold)
        except _Invalid:
            continue
        except (ValueError, TypeError, KeyError, LookupError, struct.error, OverflowError):
            continue  # as pydicom's suppress_invalid_tags
    return found


def element_values(element: JSON) -> list[Any]:
    """An element's values as text and numbers: a PN as DICOM writes it
    (``alphabetic=ideographic=phonetic``), a text written with a binary VR (OB, UN, inlined)
    read as Latin-1, a sequence as no values."""
    if "InlineBinary" in element:
        return [base64.b64decode(element["InlineBinary"]).decode("latin-1")]
    if element.get("vr") == "SQ":
        return []
    return [
        "=".join(value.get(group, "") for group in PN_GROUPS).rstrip("=")
        if isinstance(value, dict)
        else value
        for value in element.get("Value", [])
    ]


def keyword_values(header: JSON, keyword: str) -> list[str]:
    """The values of the top-level element ``keyword`` in a DICOM JSON header, as text (a
    person name as DICOM writes it); none when it is absent, empty, or not a keyword."""
    element = header.get(f"{tag_for_keyword(keyword) or 0:08X}")
    if element is None:
        return []
    return [str(v) for v in element_values(element) if v is not None and v != ""]


def _plain(element: RawDataElement) -> bool:
    """An element whose VR is plain from its bytes: explicit and known, or implicit in the
    public dictionary with one VR."""
    if element.VR is not None:
        return str(element.VR) != "UN"
    tag = int(element.tag)
    if tag >> 16 & 1:  # private: its VR is in the private creator's dictionary
        return False
    try:
        return " " not in dictionary_VR(tag)
    except KeyError:
        return False


def _no_bulk_uri(_element: object) -> str:
    return ""


def _encodings(dataset: Dataset) -> list[str]:
    element = dataset._dict.get(BaseTag(0x00080005))
    if element is None:
        return [charset.default_encoding]
    if isinstance(element, RawDataElement):
        raw = (element.value or b"").decode("ascii", "replace")
        terms = [term.strip() for term in raw.split("\\")]
    else:
        value = element.value  # one term, or several (a MultiValue, a list)
        terms = [value] if isinstance(value, str) else [str(term) for term in value or [""]]
    return list(charset.convert_encodings(terms or [""]))


def _raw(
    dataset: Dataset,
    element: RawDataElement,
    encodings: list[str],
    little: bool,
    bulk_threshold: int,
) -> JSON:
    vr = str(element.VR or dictionary_VR(int(element.tag)))
    value = element.value
    if vr == "SQ":
        items = dataset[element.tag].value  # items are data sets of raw elements already
        return {"vr": vr, "Value": [header_json(item, bulk_threshold) for item in items]}
    if value is None or value == b"":
        return {"vr": vr}
    assert isinstance(value, bytes)
    if vr in BINARY:
        inline = base64.b64encode(value).decode("ascii")
        # As pydicom judges it: the encoded length against the threshold.
        if len(inline) > bulk_threshold:
            return {"vr": vr, "BulkDataURI": ""}
        return {"vr": vr, "InlineBinary": inline}
    if vr in NUMBERS:
        code = ("<" if little else ">") + NUMBERS[vr]
        count = len(value) // struct.calcsize(code)
        return {"vr": vr, "Value": list(struct.unpack(code[0] + f"{count}" + code[1], value))}
    if vr == "AT":
        count = len(value) // 4
        pairs = struct.unpack(f"{'<' if little else '>'}{count * 2}H", value)
        tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
        return {"vr": vr, "Value": tags}
    return _strings(vr, value, encodings)


def _strings(vr: str, value: bytes, encodings: list[str]) -> JSON:
    text = _unpadded(vr, _decoded(vr, value, encodings))
    if not text:
        return {"vr": vr}
    parts = [text] if vr in SINGLE_VALUED else text.split("\\")
    if vr == "PN":
        values: list[Any] = [_person_name(part) for part in parts]
    elif vr in ("IS", "DS"):
        values = [_number(vr, part) for part in parts]
    else:
        values = parts
    return {"vr": vr, "Value": values}


def _decoded(vr: str, value: bytes, encodings: list[str]) -> str:
    if vr not in ENCODED or (value.isascii() and encodings == [charset.default_encoding]):
        return value.decode("latin-1" if not value.isascii() else "ascii")
    delimiters = PN_DELIMITERS if vr == "PN" else TEXT_DELIMITERS if vr in SINGLE_VALUED else None
    return charset.decode_bytes(value, encodings, delimiters or DEFAULT_DELIMITERS)


def _unpadded(vr: str, text: str) -> str:
    """Without the padding of the whole value (values inside keep their spaces, as in
    pydicom): a trailing NUL or space; leading spaces too, except in text."""
    text = text.rstrip("\0 ")
    return text if vr in ("UT", "ST", "LT", "UR") else text.lstrip(" ")


def _person_name(text: str) -> dict[str, str] | None:
    if not text:
        return None
    groups = text.split("=")
    names = dict(zip(PN_GROUPS, groups, strict=False))
    return {kind: name for kind, name in names.items() if name} or None


def _number(vr: str, text: str) -> int | float | str:
    text = text.strip()
    if not text:
        return ""
    parse: Callable[[str], int | float] = _integer_string if vr == "IS" else float
    try:
        return parse(text)
    except ValueError:
        raise _Invalid(f"{text!r} is not an {vr}") from None


def _integer_string(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)
