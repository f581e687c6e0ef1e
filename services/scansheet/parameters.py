"""The acquisition parameters a scan sheet shows per modality, and how values are written.

MR: TR, TE, TI, flip angle, slice thickness, spacing, matrix, field of view, sequence.
CT: kVp, mAs, slice thickness, kernel. Anything else: slice thickness and matrix. A value
that is absent or unreadable is left out of the row rather than shown as a guess.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# pydicom raises these for values it cannot convert (a malformed DS, an odd VM).
_BAD_VALUE = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


def header_text(header: Dataset, keyword: str, unit: str = "") -> str:
    """A header value as text ('' when absent); multiple values joined with a backslash."""
    try:
        value = header.get(keyword)
        if isinstance(value, MultiValue | list):
            text = "\\".join(str(part) for part in value)
        else:
            text = "" if value is None or isinstance(value, bytes) else str(value)
    except _BAD_VALUE:
        return ""
    return f"{text}{unit}" if text.strip() else ""


def _number(value: Any) -> str:
    """A number without trailing zeros: 2.50 -> 2.5, 3.0 -> 3."""
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return ""


def _floats(header: Dataset, keyword: str) -> list[float]:
    try:
        value = header.get(keyword)
        if value is None:
            return []
        parts = value if isinstance(value, MultiValue | list) else [value]
        return [float(part) for part in parts]
    except _BAD_VALUE:
        return []


def _matrix(header: Dataset, row: dict[str, Any]) -> str:
    acquisition = [int(v) for v in _floats(header, "AcquisitionMatrix") if v]
    if len(acquisition) == 2:
        return f"{acquisition[0]}x{acquisition[1]}"
    if row.get("rows") and row.get("columns"):
        return f"{row['columns']}x{row['rows']}"
    return ""


def _field_of_view(header: Dataset, row: dict[str, Any]) -> str:
    spacing = _floats(header, "PixelSpacing")
    if len(spacing) == 2 and row.get("rows") and row.get("columns"):
        width, height = spacing[1] * int(row["columns"]), spacing[0] * int(row["rows"])
        # Tenths of a millimetre: spacing x matrix carries float noise (200.001) otherwise.
        return f"{_number(round(width, 1))}x{_number(round(height, 1))} mm"
    diameter = _floats(header, "ReconstructionDiameter")
    return f"{_number(diameter[0])} mm" if diameter else ""


def _mas(header: Dataset) -> str:
    exposure = _floats(header, "Exposure")
    if exposure:
        return _number(exposure[0])
    current, time = _floats(header, "XRayTubeCurrent"), _floats(header, "ExposureTime")
    if current and time:
        return _number(current[0] * time[0] / 1000)
    return ""


def _with_unit(value: Any, unit: str, *, space: bool = True) -> str:
    text = _number(value) if value is not None else ""
    return f"{text}{' ' if space else ''}{unit}" if text else ""


def series_parameters(row: dict[str, Any], header: Dataset) -> dict[str, str]:
    """The parameters that matter for the series' modality, in the order they are shown."""
    modality = str(row.get("modality") or header.get("Modality") or "").upper()
    thickness = _with_unit(row.get("slice_thickness"), "mm")
    if modality == "MR":
        sequence = row.get("sequence_name") or header_text(header, "ScanningSequence")
        values = {
            "TR": _with_unit(row.get("repetition_time"), "ms"),
            "TE": _with_unit(row.get("echo_time"), "ms"),
            "TI": _with_unit(row.get("inversion_time"), "ms"),
            "Flip": _with_unit(row.get("flip_angle"), "°", space=False),
            "Thickness": thickness,
            "Spacing": _with_unit(row.get("spacing_between_slices"), "mm"),
            "Matrix": _matrix(header, row),
            "FOV": _field_of_view(header, row),
            "Sequence": str(sequence or ""),
        }
    elif modality == "CT":
        kvp = _floats(header, "KVP")
        values = {
            "kVp": _number(kvp[0]) if kvp else "",
            "mAs": _mas(header),
            "Thickness": thickness,
            "Kernel": header_text(header, "ConvolutionKernel"),
        }
    else:
        values = {"Thickness": thickness, "Matrix": _matrix(header, row)}
    return {label: value for label, value in values.items() if value}


def format_name(value: str) -> str:
    """A DICOM person name for people: 'DOE^JANE' -> 'DOE, JANE'; several joined by '; '."""
    names = []
    for one in value.split("\\"):
        parts = [part.strip() for part in one.split("=")[0].split("^")]
        family, given = [*parts, "", ""][:2]
        names.append(", ".join(part for part in (family, given) if part))
    return "; ".join(name for name in names if name)


def format_date(value: str) -> str:
    value = value.strip()
    return (
        f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
    )


def format_time(value: str) -> str:
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
