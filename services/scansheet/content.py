"""What a scan sheet says: the patient, the study, and a row per series, read from the index.

Study and series values come from the index's rows (``shared.db.studies``). What the rows do
not hold (patient age and weight, performing physician, CT kVp, mAs and kernel, field of view
and matrix) is read from the stored header of each series' middle instance, whose file also
gives the series' thumbnail. A series' acquisition parameters are those of its modality
(``shared.dicom.parameters``), as ``store-server study`` shows them. Values are kept as text;
the renderers escape them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.studies import middle_instance, study_detail
from shared.dicom.parameters import series_parameters
from shared.dicom.values import format_date, format_name, format_time, header_text, patient_age


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
    for one in detail.series:
        middle = await middle_instance(connection, one["series_instance_uid"])
        first_header = first_header if first_header is not None else middle.header
        rows.append(
            SeriesRow(
                series_instance_uid=one["series_instance_uid"],
                number=_shown(one["number"]),
                description=_shown(one["description"]),
                modality=_shown(one["modality"]),
                images=int(one["instance_count"] or 0),
                parameters=series_parameters(one, middle.header),
                source=accounts_dir / middle.path if middle.path else None,
            )
        )
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
    )
