"""The radiation dose of a CT study: as its dose report gives it or, without one, as the CT
images' headers do.

A dose report (X-Ray Radiation Dose SR, or Enhanced X-Ray Radiation Dose SR) holds its numbers
in an SR content tree (TID 10011, CT Radiation Dose): each content item names its concept with
a code (ConceptNameCodeSequence); a numeric item carries its value and unit in its
MeasuredValueSequence; a container's items are its ContentSequence. What is read here:

- CT Dose Length Product Total (113813, DCM), in CT Accumulated Dose Data (113811): the DLP
  of the whole study;
- each irradiation event, a CT Acquisition container (113819, DCM), with its Mean CTDIvol
  (113830, DCM) and DLP (113838, DCM), found anywhere within it (TID 10013 puts them in its
  CT Dose container, 113829).

The codes are those of pydicom's SR concept dictionary (``pydicom/sr/_concepts_dict.py``:
CTDoseLengthProductTotal, CTAccumulatedDoseData, CTAcquisition, CTDose, MeanCtdivol, DLP) and
of the HL7 Radiation Dose Summary implementation guide's examples (DICOM#113813, #113830,
#113838), which agree.

A report is read as its modality wrote it, not trusted: the tree is walked without recursion,
no deeper than :data:`MAX_DEPTH` levels and over no more than :data:`MAX_ITEMS` content items;
a value that is no finite number counts as absent, and an element that is not what its
attribute should be (a sequence written as text) is passed over. What was found before a bound
is returned, marked incomplete.

CT images carry the CTDIvol (0018,9345) of their acquisition but no DLP: without a report the
sheet shows CTDIvol alone, never a DLP made up from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from shared.dicom.parameters_modalities import sequence_items
from shared.dicom.values import element_text, header_numbers, number

# SOP classes: X-Ray Radiation Dose SR Storage, Enhanced X-Ray Radiation Dose SR Storage.
DOSE_REPORT_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.76"})
# A CT report nests four levels (report, acquisition, CT dose, value); a dozen leaves room for
# what a vendor adds, and thousands of items cover hundreds of irradiation events.
MAX_DEPTH = 12
MAX_ITEMS = 20_000

_DLP_TOTAL = ("113813", "DCM")
_ACQUISITION = ("113819", "DCM")
_MEAN_CTDI_VOL = ("113830", "DCM")
_DLP = ("113838", "DCM")
_MAX_UNIT = 16  # characters of a unit shown: a UCUM code for a dose is a few


@dataclass(frozen=True)
class Quantity:
    """A dose value with its unit as the report writes it (UCUM: ``mGy``, ``mGy.cm``)."""

    value: float
    unit: str

    @property
    def shown(self) -> str:
        """The number for people: tenths from 1 up (``456.7``), two significant digits below."""
        if abs(self.value) >= 1:
            return number(round(self.value, 1), 12)  # 12: no exponent for a DLP of 1e6
        return number(self.value, 2)

    @property
    def text(self) -> str:
        """``456.7 mGy·cm``: UCUM's period between units is a multiplication."""
        unit = self.unit.replace(".", "\N{MIDDLE DOT}")
        return f"{self.shown} {unit}" if unit else self.shown


@dataclass(frozen=True)
class IrradiationEvent:
    """One CT acquisition of a dose report; a value it does not give is None."""

    mean_ctdi_vol: Quantity | None
    dlp: Quantity | None


@dataclass(frozen=True)
class DoseReport:
    """What a dose report says of the study's CT dose. ``complete`` is False when the walk
    stopped at a bound (:data:`MAX_DEPTH`, :data:`MAX_ITEMS`) before the end of the tree."""

    total_dlp: Quantity | None
    events: tuple[IrradiationEvent, ...]
    complete: bool = True

    @property
    def found(self) -> bool:
        """Whether the report gave any value at all."""
        return self.total_dlp is not None or any(
            event.mean_ctdi_vol is not None or event.dlp is not None for event in self.events
        )


def read_dose_report(report: Dataset) -> DoseReport:
    """The total DLP and the irradiation events of a dose report's content tree, as far as it
    can be read within the bounds; never raises for what the report holds."""
    total: Quantity | None = None
    events: list[dict[tuple[str, str], Quantity]] = []
    pending: list[tuple[Dataset, int, int | None]]
    # Depth first, in document order: (content item, its depth, the event it belongs to).
    # Nothing beyond MAX_ITEMS is ever taken from a sequence, let alone visited.
    top = sequence_items(report, "ContentSequence", MAX_ITEMS + 1)
    complete = len(top) <= MAX_ITEMS
    pending = [(item, 1, None) for item in reversed(top[:MAX_ITEMS])]
    taken = len(pending)
    while pending:
        item, depth, event = pending.pop()
        concept = _concept(item)
        if concept == _ACQUISITION:
            event = len(events)
            events.append({})
        elif concept in (_MEAN_CTDI_VOL, _DLP) and event is not None:
            quantity = _quantity(item)
            if quantity is not None and concept not in events[event]:
                events[event][concept] = quantity
        elif concept == _DLP_TOTAL and total is None:
            total = _quantity(item)
        room = MAX_ITEMS - taken
        children = sequence_items(item, "ContentSequence", room + 1)
        if children and (depth >= MAX_DEPTH or len(children) > room):
            complete = False
            children = [] if depth >= MAX_DEPTH else children[:room]
        taken += len(children)
        pending.extend((child, depth + 1, event) for child in reversed(children))
    return DoseReport(
        total_dlp=total,
        events=tuple(IrradiationEvent(one.get(_MEAN_CTDI_VOL), one.get(_DLP)) for one in events),
        complete=complete,
    )


def image_ctdi_vol(header: Dataset) -> Quantity | None:
    """The CTDIvol (0018,9345) of a CT image, in mGy: at the top level, else in the CT
    Exposure macro of an enhanced image's shared, then first per-frame, functional group."""
    places = [header]
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in sequence_items(header, groups, 1):
            places.extend(sequence_items(group, "CTExposureSequence", 1))
    for place in places:
        values = header_numbers(place, "CTDIvol")
        if values and math.isfinite(values[0]) and values[0] >= 0:
            return Quantity(values[0], "mGy")
    return None


def dose_summary(report: DoseReport | None, image_ctdi: Iterable[Quantity]) -> dict[str, str]:
    """The study's dose for the sheet, label to value; empty when nothing is known.

    The report's values come first: its total DLP, and the range of its events' Mean CTDIvol.
    Without CTDIvol from a report, the range of the images' (one per CT series). ``Source``
    says where the values came from."""
    summary: dict[str, str] = {}
    sources: list[str] = []
    if report is not None and report.total_dlp is not None:
        summary["Total DLP"] = report.total_dlp.text
        sources.append("dose report")
    reported = [e.mean_ctdi_vol for e in (report.events if report else ()) if e.mean_ctdi_vol]
    ctdi = _range(reported)
    if ctdi and "dose report" not in sources:
        sources.append("dose report")
    if not ctdi and (ctdi := _range(list(image_ctdi))):
        sources.append("image headers")
    if ctdi:
        summary["CTDIvol"] = ctdi
    if sources:
        summary["Source"] = " and ".join(sources)
    return summary


def _range(quantities: list[Quantity]) -> str:
    """The lowest and highest of the quantities in the first one's unit, an en dash between
    (``5.1`` dash ``12.3 mGy``), or one value when they show the same."""
    if not quantities:
        return ""
    unit = quantities[0].unit
    values = [q.value for q in quantities if q.unit == unit]
    low, high = Quantity(min(values), unit), Quantity(max(values), unit)
    return high.text if low.shown == high.shown else f"{low.shown}\N{EN DASH}{high.text}"


def _concept(item: Dataset) -> tuple[str, str] | None:
    """The content item's concept name as (code value, coding scheme designator)."""
    names = sequence_items(item, "ConceptNameCodeSequence", 1)
    if not names:
        return None
    return element_text(names[0], "CodeValue"), element_text(names[0], "CodingSchemeDesignator")


def _quantity(item: Dataset) -> Quantity | None:
    """A numeric content item's value and unit; None without a finite number."""
    measured = sequence_items(item, "MeasuredValueSequence", 1)
    if not measured:
        return None
    values = header_numbers(measured[0], "NumericValue")
    if not values or not math.isfinite(values[0]):
        return None
    units = sequence_items(measured[0], "MeasurementUnitsCodeSequence", 1)
    unit = element_text(units[0], "CodeValue") if units else ""
    if not unit.isprintable() or len(unit) > _MAX_UNIT:
        unit = ""
    return Quantity(values[0], unit)
