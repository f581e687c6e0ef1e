"""Queries over the index for people: the study list, one study with its series, and the
middle instance of a series with its stored header.

Used by ``store-server studies`` and ``store-server study``, and by the scan sheet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import instances, patients, series, studies
from shared.folding import fold

SERIES_FIELDS = (
    "series_instance_uid",
    "number",
    "description",
    "modality",
    "protocol",
    "body_part",
    "instance_count",
    "repetition_time",
    "echo_time",
    "inversion_time",
    "flip_angle",
    "slice_thickness",
    "spacing_between_slices",
    "pixel_spacing",
    "rows",
    "columns",
    "field_strength",
    "sequence_name",
)


@dataclass(frozen=True)
class StudySummary:
    study_instance_uid: str
    study_date: str | None
    study_time: str | None
    description: str | None
    accession_number: str | None
    modalities: str | None
    patient_name: str | None
    patient_id: str | None
    account: str | None
    study_folder: str | None
    series_count: int
    instance_count: int
    first_received_at: datetime | None
    last_received_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class StudyDetail:
    study: StudySummary
    patient: dict[str, Any]
    attributes: dict[str, Any]
    conflicts: dict[str, list[str]]
    series: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.study.as_json(),
            "patient": self.patient,
            **self.attributes,
            "conflicts": self.conflicts,
            "series": self.series,
        }


_SUMMARY = (
    studies.c.study_instance_uid,
    studies.c.study_date,
    studies.c.study_time,
    studies.c.description,
    studies.c.accession_number,
    studies.c.modalities,
    patients.c.name.label("patient_name"),
    patients.c.patient_id,
    studies.c.account,
    studies.c.study_folder,
    studies.c.series_count,
    studies.c.instance_count,
    studies.c.first_received_at,
    studies.c.last_received_at,
)


async def list_studies(
    connection: AsyncConnection,
    *,
    account: str | None = None,
    patient: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StudySummary]:
    """Studies, most recently received first; ``patient`` matches name or ID, whatever the
    case, accents and punctuation;
    ``since`` keeps the studies that received an instance at or after it."""
    query = (
        sa.select(*_SUMMARY)
        .select_from(studies.outerjoin(patients, studies.c.patient_fk == patients.c.id))
        .order_by(studies.c.last_received_at.desc(), studies.c.id.desc())
        .limit(limit)
    )
    if account is not None:
        query = query.where(studies.c.account == account)
    if since is not None:
        query = query.where(studies.c.last_received_at >= since)
    if patient and (needle := fold(patient)):
        # Name and ID folded at indexing time as physician names are (shared.folding), so
        # that "muller" finds Müller in SQLite, whose lower() knows only ASCII, as well.
        query = query.where(patients.c.search_text.contains(needle, autoescape=True))
    rows = await connection.execute(query)
    return [StudySummary(**row) for row in rows.mappings()]


async def study_detail(connection: AsyncConnection, study_instance_uid: str) -> StudyDetail | None:
    """One study with its patient and its series in series-number order; None if unknown."""
    row = (
        (
            await connection.execute(
                sa.select(
                    *_SUMMARY,
                    studies.c.id,
                    studies.c.conflicts,
                    studies.c.requesting_physician,
                    studies.c.referring_physician,
                    studies.c.institution,
                    studies.c.station,
                    patients.c.issuer,
                    patients.c.birth_date,
                    patients.c.sex,
                )
                .select_from(studies.outerjoin(patients, studies.c.patient_fk == patients.c.id))
                .where(studies.c.study_instance_uid == study_instance_uid)
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    series_rows = await connection.execute(
        sa.select(*(series.c[name] for name in SERIES_FIELDS))
        .where(series.c.study_fk == row["id"])
        .order_by(series.c.number, series.c.series_instance_uid)
    )
    return StudyDetail(
        study=StudySummary(**{column.name: row[column.name] for column in _SUMMARY}),
        patient={
            "name": row["patient_name"],
            "id": row["patient_id"],
            "issuer": row["issuer"],
            "birth_date": row["birth_date"],
            "sex": row["sex"],
        },
        attributes={
            name: row[name]
            for name in (
                "requesting_physician",
                "referring_physician",
                "institution",
                "station",
            )
        },
        conflicts=row["conflicts"] or {},
        series=[dict(one) for one in series_rows.mappings()],
    )


@dataclass(frozen=True)
class MiddleInstance:
    """A series' middle instance: its file, relative to the accounts directory, and its header
    as the index stored it (bulk data left out). A series without instances has neither: no
    path and an empty header, which shows nothing rather than failing."""

    path: str | None
    header: Dataset


async def middle_instance(connection: AsyncConnection, series_instance_uid: str) -> MiddleInstance:
    """The series' middle instance by instance number (those without one last). Its header
    stands for the series where the series row says too little."""
    in_series = series.c.series_instance_uid == series_instance_uid
    count = await connection.scalar(
        sa.select(sa.func.count()).select_from(instances.join(series)).where(in_series)
    )
    row = (
        await connection.execute(
            sa.select(instances.c.path, instances.c.header)
            .select_from(instances.join(series))
            .where(in_series)
            .order_by(instances.c.instance_number.is_(None), instances.c.instance_number)
            .order_by(instances.c.id)
            .offset((count or 0) // 2)
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return MiddleInstance(None, Dataset())
    try:
        header = Dataset.from_json(row.header) if isinstance(row.header, dict) else Dataset()
    # A stored header with a value pydicom cannot take back is read as empty, not fatal.
    except (ValueError, TypeError, KeyError, AttributeError):
        header = Dataset()
    return MiddleInstance(str(row.path), header)
