"""The acquisition parameters that matter for a series' modality, written for people.

MR: TR, TE, TI, flip angle, slice thickness, spacing between slices, pixel spacing, matrix,
field of view, sequence, field strength. CT: kVp, mAs, slice thickness, pixel spacing,
kernel. PET, NM, US, CR, DX and MG: those of :mod:`shared.dicom.parameters_modalities`
(radiopharmaceutical and activity, energy window, transducer, exposure, view...). Anything
else: slice thickness, pixel spacing and matrix. The scan sheet and ``store-server study``
both show these, so they say the same. Values come from the index's series row, and what the
row lacks from a header of the series (its middle instance's). A value that is absent or
unreadable is left out rather than shown as a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from shared.dicom.parameters_modalities import mas, modality_parameters
from shared.dicom.values import header_numbers, header_text, number


def _spacing(row: Mapping[str, Any], header: Dataset) -> list[float]:
    """Pixel Spacing: the distance between rows, then between columns, in mm."""
    indexed = str(row.get("pixel_spacing") or "")
    try:
        spacing = [float(part) for part in indexed.split("\\")] if indexed else []
    except ValueError:
        spacing = []
    return spacing or header_numbers(header, "PixelSpacing")


def _pixel_spacing(row: Mapping[str, Any], header: Dataset) -> str:
    spacing = _spacing(row, header)
    if len(spacing) != 2:
        return ""
    # Three significant digits: 0.4296875 is 0.43 to a reader, and 0.0625 keeps its meaning.
    return f"{number(spacing[0], 3)} \N{MULTIPLICATION SIGN} {number(spacing[1], 3)} mm"


def _matrix(row: Mapping[str, Any], header: Dataset) -> str:
    acquisition = [int(v) for v in header_numbers(header, "AcquisitionMatrix") if v]
    if len(acquisition) == 2:
        return f"{acquisition[0]}x{acquisition[1]}"
    if row.get("rows") and row.get("columns"):
        return f"{row['columns']}x{row['rows']}"
    return ""


def _field_of_view(row: Mapping[str, Any], header: Dataset) -> str:
    spacing = _spacing(row, header)
    if len(spacing) == 2 and row.get("rows") and row.get("columns"):
        width, height = spacing[1] * int(row["columns"]), spacing[0] * int(row["rows"])
        # Tenths of a millimetre: spacing x matrix carries float noise (200.001) otherwise.
        return f"{number(round(width, 1))}x{number(round(height, 1))} mm"
    diameter = header_numbers(header, "ReconstructionDiameter")
    return f"{number(diameter[0])} mm" if diameter else ""


def _with_unit(value: Any, unit: str, *, space: bool = True) -> str:
    text = number(value) if value is not None else ""
    return f"{text}{' ' if space else ''}{unit}" if text else ""


def series_parameters(row: Mapping[str, Any], header: Dataset) -> dict[str, str]:
    """The parameters of the series' modality, label to value, in the order they are shown.

    ``row`` is the series' row in the index (``shared.db.studies.SERIES_FIELDS``); ``header``
    is the stored header of one of its instances, an empty Dataset when there is none.
    """
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
            "Pixel spacing": _pixel_spacing(row, header),
            "Matrix": _matrix(row, header),
            "FOV": _field_of_view(row, header),
            "Sequence": str(sequence or ""),
            "Field": _with_unit(row.get("field_strength"), "T"),
        }
    elif modality == "CT":
        kvp = header_numbers(header, "KVP")
        values = {
            "kVp": number(kvp[0]) if kvp else "",
            "mAs": mas(header),
            "Thickness": thickness,
            "Pixel spacing": _pixel_spacing(row, header),
            "Kernel": header_text(header, "ConvolutionKernel"),
        }
    elif (by_modality := modality_parameters(modality, header)) is not None:
        return by_modality
    else:
        values = {
            "Thickness": thickness,
            "Pixel spacing": _pixel_spacing(row, header),
            "Matrix": _matrix(row, header),
        }
    return {label: value for label, value in values.items() if value}


def parameters_line(parameters: Mapping[str, str]) -> str:
    """Parameters on one line, as the sheet and ``store-server study`` show them.

    ``{"TR": "600 ms", "TE": "11 ms"}`` is ``TR 600 ms, TE 11 ms``.
    """
    return ", ".join(f"{label} {value}" for label, value in parameters.items())
