"""DICOM values written for people: header text, numbers, names (PN), dates (DA), times (TM)
and ages (AS).

Pure functions of values already read; a value that is absent or unreadable gives '' rather
than an exception or a guess, since it comes from a modality and is shown, not trusted.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

# pydicom raises these for values it cannot convert (a malformed DS, an odd VM).
_BAD_VALUE = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


def as_text(value: object, *, first_only: bool = False) -> str:
    """A DICOM value as text, '' when there is none: several values joined with a backslash
    (or the first alone); bytes (a text element written with a binary VR) read as Latin-1; a
    sequence where text belongs counts as none; control characters and what a database cannot
    store (NUL, a lone surrogate from a broken character set) taken out; spaces trimmed."""
    if value is None or isinstance(value, Sequence):
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, MultiValue | list | tuple):
        parts = [as_text(part) for part in value]
        value = (parts[0] if parts else "") if first_only else "\\".join(parts)
    text = storable(str(value))
    if not text.isprintable():  # control characters (a broken ISO 2022 escape) mean nothing
        text = "".join(c for c in text if unicodedata.category(c) != "Cc")
    return text.strip()


def element_text(dataset: Dataset, keyword: str, *, first_only: bool = False) -> str:
    """:func:`as_text` of an element, '' when absent or when pydicom cannot convert it."""
    try:
        value = dataset.get(keyword)
    except _BAD_VALUE:
        return ""
    return as_text(value, first_only=first_only)


def storable(text: str) -> str:
    """``text`` as PostgreSQL stores it: without NUL, lone surrogates replaced by ``?``."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, from a broken character set
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def header_text(header: Dataset, keyword: str, unit: str = "") -> str:
    """A header value as text for people, with its unit ('' when absent)."""
    text = element_text(header, keyword)
    return f"{text}{unit}" if text else ""


def header_numbers(header: Dataset, keyword: str) -> list[float]:
    """A numeric header value as a list of floats, one per value; [] when absent or malformed."""
    try:
        value = header.get(keyword)
        if value is None:
            return []
        parts = value if isinstance(value, MultiValue | list) else [value]
        return [float(part) for part in parts]
    except _BAD_VALUE:
        return []


def number(value: Any, digits: int = 6) -> str:
    """A number to ``digits`` significant digits without trailing zeros: 2.50 -> 2.5, 3.0 -> 3."""
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return ""


def format_name(value: str) -> str:
    """A DICOM person name for people: 'DOE^JANE' -> 'DOE, JANE'; several joined by '; '."""
    names = []
    for one in value.split("\\"):
        parts = [part.strip() for part in one.split("=")[0].split("^")]
        family, given = [*parts, "", ""][:2]
        names.append(", ".join(part for part in (family, given) if part))
    return "; ".join(name for name in names if name)


def format_date(value: str) -> str:
    """'20261125' -> '2026-11-25'; anything else as written."""
    value = value.strip()
    return (
        f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
    )


def format_time(value: str) -> str:
    """'101500.123' -> '10:15:00'; anything else as written."""
    digits = value.strip().split(".")[0]
    if len(digits) >= 4 and digits.isdigit():
        return ":".join(digits[i : i + 2] for i in range(0, min(len(digits), 6), 2))
    return value


def patient_age(header: Dataset, birth_date: str, study_date: str) -> str:
    """The Patient's Age as written ('045Y' -> '45 y'), else from birth and study dates."""
    written = header_text(header, "PatientAge").strip()
    if len(written) == 4 and written[:3].isdigit() and written[3] in "DWMY":
        return f"{int(written[:3])} {written[3].lower()}"
    try:
        born = date(int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:8]))
        seen = date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:8]))
    except ValueError:
        return ""
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return f"{years} y" if years >= 0 else ""
