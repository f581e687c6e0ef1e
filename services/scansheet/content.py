"""What a scan sheet says: the patient, the study, and a row per series, read from the index.

Study and series values come from the index's rows (``shared.db.studies``). What the rows do
not hold (patient age and weight, performing physician, CT kVp, mAs and kernel, field of view
and matrix) is read from the stored header of each series' middle instance, whose file also
gives the series' thumbnail. A series' acquisition parameters are those of its modality
(``shared.dicom.parameters``), as ``store-server study`` shows them; the same header gives its
protocol, plane, contrast agent and (CT) CTDIvol. The study's dose is that of its dose report
(an X-Ray Radiation Dose SR among its instances) when one can be read, else the CTDIvol of its
CT images (``shared.dicom.dose``); its contrast that of its first series with an agent. Values
are kept as text; the renderers escape them.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import instances, series, studies
from shared.db.studies import middle_instance, study_detail
from shared.dicom.dose import (
    DOSE_REPORT_CLASSES,
    DoseReport,
    Quantity,
    dose_summary,
    image_ctdi_vol,
    read_dose_report,
)
from shared.dicom.header import read_header
from shared.dicom.parameters import series_parameters
from shared.dicom.parameters_modalities import code_meaning, first_item
from shared.dicom.values import (
    format_date,
    format_name,
    format_time,
    header_numbers,
    header_text,
    number,
    patient_age,
)
from shared.log import get_logger

log = get_logger(__name__)

# A dose report is a few hundred kilobytes; one larger than this is not read (nor inflated
# beyond it), so that a hostile file costs the sheet neither memory nor time.
MAX_REPORT_BYTES = 16 * 2**20
MAX_REPORTS_TRIED = 3  # the newest dose reports of a study, tried in turn
# A slice whose normal lies within about 37 degrees of a patient axis (its largest direction
# cosine at least 0.8) is named for that axis, as people still call a tilted axial (gantry
# tilt, an AC-PC line) axial; nearer 45 degrees, where two planes are about as near, oblique.
PLANE_COSINE = 0.8
_PLANES = ("sagittal", "coronal", "axial")  # the normal along x (left), y (back), z (head)
# What modalities write in Contrast/Bolus Agent to say there was none.
_NO_AGENT = frozenset({"NONE", "NO", "N/A", "NA", "-", "NO CONTRAST", "WITHOUT"})


@dataclass(frozen=True)
class SeriesRow:
    """One row of the sheet; ``source`` is the middle instance's file, for the thumbnail."""

    series_instance_uid: str
    number: str
    description: str
    modality: str
    images: int
    parameters: dict[str, str]
    source: Path | None
    protocol: str = ""  # Protocol Name
    plane: str = ""  # the acquisition plane ("axial", "sagittal", "coronal", "oblique")
    contrast: str = ""  # the series' contrast/bolus agent, if any
    dose: str = ""  # the series' dose (CT: its CTDIvol, "12.3 mGy")


@dataclass(frozen=True)
class SheetContent:
    study_instance_uid: str
    study_folder: str
    last_received_at: datetime | None
    patient: dict[str, str]
    study: dict[str, str]
    series: list[SeriesRow]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The study's dose, label to value ("Total DLP": "456 mGy·cm", "Source": "dose report"),
    # and its contrast ("Agent", "Route", "Volume"); empty when there is none.
    dose: dict[str, str] = field(default_factory=dict)
    contrast: dict[str, str] = field(default_factory=dict)


class UnknownStudy(LookupError):
    """The index holds no such study (or it has no study folder yet)."""


def _shown(value: Any) -> str:
    """An index value as the sheet shows it: nothing when there is none."""
    return "" if value is None else str(value)


async def read_content(
    connection: AsyncConnection, study_uid: str, accounts_dir: Path
) -> SheetContent:
    detail = await study_detail(connection, study_uid)
    if detail is None or not detail.study.study_folder:
        raise UnknownStudy(f"no indexed study {study_uid}")
    rows: list[SeriesRow] = []
    first_header: Dataset | None = None
    contrast: dict[str, str] = {}
    ctdi: list[Quantity] = []
    for one in detail.series:
        middle = await middle_instance(connection, one["series_instance_uid"])
        first_header = first_header if first_header is not None else middle.header
        modality = _shown(one["modality"]) or header_text(middle.header, "Modality")
        series_ctdi = image_ctdi_vol(middle.header) if modality.upper() == "CT" else None
        if series_ctdi is not None:
            ctdi.append(series_ctdi)
        series_contrast = contrast_agent(middle.header)
        contrast = contrast or series_contrast
        rows.append(
            SeriesRow(
                series_instance_uid=one["series_instance_uid"],
                number=_shown(one["number"]),
                description=_shown(one["description"]),
                modality=_shown(one["modality"]),
                images=int(one["instance_count"] or 0),
                parameters=series_parameters(one, middle.header),
                source=accounts_dir / middle.path if middle.path else None,
                protocol=_shown(one["protocol"]) or header_text(middle.header, "ProtocolName"),
                plane=acquisition_plane(middle.header),
                contrast=", ".join(
                    series_contrast[key]
                    for key in ("Agent", "Route", "Volume")
                    if key in series_contrast
                ),
                dose=series_ctdi.text if series_ctdi is not None else "",
            )
        )
    report = await _dose_report(connection, study_uid, accounts_dir)
    header = first_header if first_header is not None else Dataset()
    summary = detail.study
    patient = detail.patient
    return SheetContent(
        study_instance_uid=study_uid,
        study_folder=summary.study_folder or "",
        last_received_at=summary.last_received_at,
        patient={
            "name": format_name(_shown(patient["name"])),
            "id": _shown(patient["id"]),
            "birth_date": format_date(_shown(patient["birth_date"])),
            "sex": _shown(patient["sex"]),
            "age": patient_age(header, _shown(patient["birth_date"]), _shown(summary.study_date)),
            "weight": header_text(header, "PatientWeight", " kg"),
        },
        study={
            "date": format_date(_shown(summary.study_date)),
            "time": format_time(_shown(summary.study_time)),
            "description": _shown(summary.description),
            "accession": _shown(summary.accession_number),
            "requesting_physician": format_name(_shown(detail.attributes["requesting_physician"])),
            "referring_physician": format_name(_shown(detail.attributes["referring_physician"])),
            "performing_physician": format_name(header_text(header, "PerformingPhysicianName")),
            "institution": _shown(detail.attributes["institution"]),
            "station": _shown(detail.attributes["station"]),
            "modality": ", ".join(part for part in _shown(summary.modalities).split("\\") if part),
            "account": _shown(summary.account),
            "instances": str(summary.instance_count),
            "series": str(summary.series_count),
            "study_instance_uid": study_uid,
        },
        series=rows,
        dose=dose_summary(report, ctdi),
        contrast=contrast,
    )


def acquisition_plane(header: Dataset) -> str:
    """The plane of the image: ``axial``, ``sagittal`` or ``coronal`` after the patient axis
    its normal (row cosines x column cosines) is nearest, ``oblique`` when none is near
    (:data:`PLANE_COSINE`); '' without a readable Image Orientation (Patient)."""
    cosines = _orientation(header)
    if len(cosines) != 6 or not all(math.isfinite(c) and abs(c) <= 2 for c in cosines):
        return ""
    (rx, ry, rz), (cx, cy, cz) = cosines[:3], cosines[3:]
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    length = math.sqrt(sum(n * n for n in normal))
    row, column = math.hypot(rx, ry, rz), math.hypot(cx, cy, cz)
    # Directions that are not two (about) perpendicular unit vectors describe no plane.
    if not (0.9 < row < 1.1 and 0.9 < column < 1.1 and length > 0.9):
        return ""
    largest = max(range(3), key=lambda axis: abs(normal[axis]))
    return _PLANES[largest] if abs(normal[largest]) / length >= PLANE_COSINE else "oblique"


def _orientation(header: Dataset) -> list[float]:
    """Image Orientation (Patient): at the top level, else in the Plane Orientation macro of
    an enhanced image's shared, then first per-frame, functional group."""
    found = header_numbers(header, "ImageOrientationPatient")
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if found:
            break
        plane = first_item(first_item(header, groups), "PlaneOrientationSequence")
        found = header_numbers(plane, "ImageOrientationPatient")
    return found


def contrast_agent(header: Dataset) -> dict[str, str]:
    """The contrast/bolus of the image: ``Agent``, ``Route``, ``Volume`` and ``Start time``
    when written, from the Contrast/Bolus module or an enhanced image's Contrast/Bolus Agent
    Sequence; empty without an agent, or when the agent written says there was none."""
    coded = first_item(header, "ContrastBolusAgentSequence")
    agent = header_text(header, "ContrastBolusAgent") or header_text(coded, "CodeMeaning")
    if not agent or agent.upper() in _NO_AGENT:
        return {}
    route = header_text(header, "ContrastBolusRoute") or code_meaning(
        coded, "ContrastBolusAdministrationRouteSequence"
    )
    volume = header_numbers(header, "ContrastBolusVolume") or header_numbers(
        coded, "ContrastBolusVolume"
    )
    values = {
        "Agent": agent,
        "Route": route,
        # A volume of 0 ml beside an agent is a field left at its default, not a dose.
        "Volume": f"{number(volume[0])} ml" if volume and volume[0] > 0 else "",
        "Start time": format_time(header_text(header, "ContrastBolusStartTime")),
    }
    return {label: value for label, value in values.items() if value}


async def _dose_report(
    connection: AsyncConnection, study_uid: str, accounts_dir: Path
) -> DoseReport | None:
    """The study's newest dose report that gives a value; None when it has none or none can
    be read. Its series stays a row of the sheet like any other."""
    paths = await connection.scalars(
        sa.select(instances.c.path)
        .select_from(instances.join(series).join(studies))
        .where(
            studies.c.study_instance_uid == study_uid,
            instances.c.sop_class_uid.in_(sorted(DOSE_REPORT_CLASSES)),
        )
        .order_by(instances.c.received_at.desc(), instances.c.id.desc())
        .limit(MAX_REPORTS_TRIED)
    )
    for path in paths.all():
        report = await asyncio.to_thread(_read_dose_report, accounts_dir / path)
        if report is not None and report.found:
            return report
    return None


def _read_dose_report(path: Path) -> DoseReport | None:
    """A dose report file's values; None, with a warning, when it cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            log.warning("scansheet.dose_report_unread", path=str(path), reason=f"{size} bytes")
            return None
        dataset = read_header(path, max_value=MAX_REPORT_BYTES, max_inflated=4 * MAX_REPORT_BYTES)
        report = read_dose_report(dataset)
    # Every exception, not a named few: a dose report is a modality's file, which pydicom
    # may fail on in any way (a RecursionError for a deep nesting, among others), and the
    # sheet without its dose is better than no sheet at all.
    except Exception as error:
        log.warning("scansheet.dose_report_unread", path=str(path), reason=repr(error)[:300])
        return None
    if not report.complete:
        log.warning("scansheet.dose_report_bounded", path=str(path))
    return report
