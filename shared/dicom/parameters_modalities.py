"""The acquisition parameters of PET, nuclear medicine, ultrasound and projection X-ray series
(CR, DX, MG), written for people; :mod:`shared.dicom.parameters` adds them to MR and CT's.

Each comes from the header of one instance of the series (its middle one) and is shown only
when present and readable: a modality writes what it knows, and many write little. Values in
sequences (radiopharmaceutical, energy windows, detectors, ultrasound regions) are read from
their first item, which is the one that stands for the image in all that the sheet shows.
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from shared.dicom.values import element_text, header_numbers, header_text, number

# pydicom raises these for values it cannot convert (a malformed DS, an odd VM).
_BAD_VALUE = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)
_MAX_WINDOWS = 4  # energy windows shown; a dual-isotope study has two or three
# Decay Correction (0054,1102): the moment counts are corrected to.
_DECAY_CORRECTION = {"START": "to start", "ADMIN": "to administration", "NONE": "none"}
# Anode Target Material (0018,1191) and Filter Material (0018,7050), as mammographers name them.
_ELEMENTS = {
    "ALUMINUM": "Al",
    "COPPER": "Cu",
    "MOLYBDENUM": "Mo",
    "RHODIUM": "Rh",
    "SILVER": "Ag",
    "TUNGSTEN": "W",
    "NIOBIUM": "Nb",
    "EUROPIUM": "Eu",
    "LEAD": "Pb",
    "TITANIUM": "Ti",
}


def mas(header: Dataset) -> str:
    """Exposure (0018,1152) in mAs, else tube current times exposure time (mA x ms / 1000)."""
    exposure = header_numbers(header, "Exposure")
    if exposure:
        return number(exposure[0])
    current, time = (
        header_numbers(header, "XRayTubeCurrent"),
        header_numbers(header, "ExposureTime"),
    )
    if current and time:
        return number(current[0] * time[0] / 1000)
    return ""


def modality_parameters(modality: str, header: Dataset) -> dict[str, str] | None:
    """The parameters of a PET, NM, US, CR, DX or MG image, label to value, in the order they
    are shown, without those absent; None for another modality."""
    reader = _READERS.get(modality)
    return None if reader is None else {k: v for k, v in reader(header).items() if v}


def _pet(header: Dataset) -> dict[str, str]:
    drug = first_item(header, "RadiopharmaceuticalInformationSequence")
    return {
        "Radiopharmaceutical": _radiopharmaceutical(drug),
        "Injected": _megabecquerel(drug),
        "Half life": _half_life(drug),
        "Decay correction": _decay_correction(header),
        "Reconstruction": header_text(header, "ReconstructionMethod"),
    }


def _nuclear_medicine(header: Dataset) -> dict[str, str]:
    drug = first_item(header, "RadiopharmaceuticalInformationSequence")
    return {
        "Radiopharmaceutical": _radiopharmaceutical(drug),
        "Injected": _megabecquerel(drug),
        "Energy window": _energy_windows(header),
        "Collimator": _collimator(header),
    }


def _ultrasound(header: Dataset) -> dict[str, str]:
    region = first_item(header, "SequenceOfUltrasoundRegions")
    # Transducer Frequency (0018,6030) is in kHz; probes are named in MHz.
    frequency = header_numbers(region, "TransducerFrequency")
    return {
        "Transducer": header_text(header, "TransducerData")
        or header_text(region, "TransducerType"),
        "Frequency": f"{number(frequency[0] / 1000, 3)} MHz" if frequency else "",
        "MI": _plain(header, "MechanicalIndex"),
        "TIS": _plain(header, "SoftTissueThermalIndex"),
        "TIB": _plain(header, "BoneThermalIndex"),
        "TIC": _plain(header, "CranialThermalIndex"),
    }


def _radiography(header: Dataset) -> dict[str, str]:
    return {
        "kVp": _plain(header, "KVP"),
        "mAs": _xray_mas(header),
        "EI": _plain(header, "ExposureIndex"),
        "DI": _plain(header, "DeviationIndex"),
        "View": _view(header),
        "Detector": header_text(header, "DetectorDescription")
        or header_text(header, "DetectorID")
        or header_text(header, "PlateType")
        or header_text(header, "DetectorType"),
    }


def _mammography(header: Dataset) -> dict[str, str]:
    force = header_numbers(header, "CompressionForce")  # newtons
    thickness = header_numbers(header, "BodyPartThickness")  # mm, compressed
    laterality = header_text(header, "ImageLaterality") or header_text(header, "Laterality")
    return {
        "kVp": _plain(header, "KVP"),
        "mAs": _xray_mas(header),
        "Compression": f"{number(force[0])} N" if force else "",
        "Thickness": f"{number(thickness[0])} mm" if thickness else "",
        "Anode/filter": _anode_filter(header),
        "View": " ".join(part for part in (laterality, _view(header)) if part),
    }


_READERS: dict[str, Callable[[Dataset], dict[str, str]]] = {
    "PT": _pet,
    "NM": _nuclear_medicine,
    "US": _ultrasound,
    "CR": _radiography,
    "DX": _radiography,
    "MG": _mammography,
}


def sequence_items(dataset: Dataset, keyword: str, limit: int | None = None) -> list[Dataset]:
    """A sequence's items (no more than ``limit``); none when the element is absent, cannot be
    read or is not a sequence (a sequence's tag written with a text VR)."""
    try:
        value = dataset.get(keyword)
    except _BAD_VALUE:
        return []
    if not isinstance(value, Sequence):
        return []
    items = value if limit is None else value[: max(limit, 0)]
    return [item for item in items if isinstance(item, Dataset)]


def first_item(dataset: Dataset, keyword: str) -> Dataset:
    """A sequence's first item; an empty Dataset when there is none."""
    items = sequence_items(dataset, keyword, 1)
    return items[0] if items else Dataset()


def code_meaning(dataset: Dataset, keyword: str) -> str:
    """The Code Meaning of a code sequence's first item."""
    return element_text(first_item(dataset, keyword), "CodeMeaning")


def _plain(header: Dataset, keyword: str) -> str:
    """A number as written, without trailing zeros: ``0.40`` -> ``0.4``."""
    values = header_numbers(header, keyword)
    return number(values[0]) if values else ""


def _radiopharmaceutical(drug: Dataset) -> str:
    return (
        header_text(drug, "Radiopharmaceutical")
        or code_meaning(drug, "RadiopharmaceuticalCodeSequence")
        or code_meaning(drug, "RadionuclideCodeSequence")
    )


def _megabecquerel(drug: Dataset) -> str:
    """Radionuclide Total Dose (0018,1074), written in Bq, in MBq as it is prescribed."""
    dose = header_numbers(drug, "RadionuclideTotalDose")
    return f"{number(dose[0] / 1e6, 4)} MBq" if dose and dose[0] > 0 else ""


def _half_life(drug: Dataset) -> str:
    """Radionuclide Half Life (0018,1075), written in seconds, in the unit people use for
    the nuclide: seconds for O-15, minutes for F-18 (109.8 min), hours for Tc-99m."""
    seconds = header_numbers(drug, "RadionuclideHalfLife")
    if not seconds or seconds[0] <= 0:
        return ""
    if seconds[0] < 120:
        return f"{number(seconds[0], 4)} s"
    if seconds[0] < 600 * 60:
        return f"{number(seconds[0] / 60, 4)} min"
    return f"{number(seconds[0] / 3600, 4)} h"


def _decay_correction(header: Dataset) -> str:
    written = header_text(header, "DecayCorrection")
    return _DECAY_CORRECTION.get(written.upper(), written)


def _energy_windows(header: Dataset) -> str:
    """Each window's range in keV, an en dash between its limits, after the window's name
    when it has one; windows apart by a semicolon."""
    shown = []
    for window in sequence_items(header, "EnergyWindowInformationSequence", _MAX_WINDOWS):
        ranges = []
        for limits in sequence_items(window, "EnergyWindowRangeSequence", _MAX_WINDOWS):
            lower = header_numbers(limits, "EnergyWindowLowerLimit")
            upper = header_numbers(limits, "EnergyWindowUpperLimit")
            if lower and upper:
                ranges.append(f"{number(lower[0])}\N{EN DASH}{number(upper[0])} keV")
        name = header_text(window, "EnergyWindowName")
        text = " ".join(part for part in (name, " + ".join(ranges)) if part)
        if text:
            shown.append(text)
    return "; ".join(shown)


def _collimator(header: Dataset) -> str:
    """The first detector's collimator, by name (``LEHR``) else by type (``PARA``)."""
    for place in (first_item(header, "DetectorInformationSequence"), header):
        named = header_text(place, "CollimatorGridName") or header_text(place, "CollimatorType")
        if named:
            return named
    return ""


def _xray_mas(header: Dataset) -> str:
    """Exposure in µAs (0018,1153), the more precise, in mAs; else as for CT."""
    microampere_seconds = header_numbers(header, "ExposureInuAs")
    if microampere_seconds:
        return number(microampere_seconds[0] / 1000, 4)
    return mas(header)


def _view(header: Dataset) -> str:
    """View Position (``PA``, ``CC``, ``MLO``), else the meaning of the view's code."""
    return header_text(header, "ViewPosition") or code_meaning(header, "ViewCodeSequence")


def _anode_filter(header: Dataset) -> str:
    """``Mo/Rh``: the anode's element, then the filters' (several joined by ``+``)."""
    anode = element_text(header, "AnodeTargetMaterial")
    anode = _ELEMENTS.get(anode.upper(), anode)
    written = [part for part in element_text(header, "FilterMaterial").split("\\") if part]
    filters = "+".join(_ELEMENTS.get(part.upper(), part) for part in written)
    if anode and filters:
        return f"{anode}/{filters}"
    return anode or (f"filter {filters}" if filters else "")
