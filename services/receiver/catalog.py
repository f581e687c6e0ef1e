"""The index as a C-FIND SCP sees it: four query levels, their keys, and what matches.

Each level is a table of the index joined to the levels above it (Study Root's STUDY level
carries the patient's keys). A key that is a column is matched by the index first, as far as
SQL can narrow it (:meth:`Condition.sql_hint`), then exactly here; any other key is matched
against, and returned from, the header of one of the entity's instances (at the IMAGE level,
the instance's own), which the index keeps whole. Matches are read into memory, at most
``limit`` of them, and the connection is let go before anything is sent to the peer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy.ext.asyncio import AsyncConnection

from services.receiver.matching import Condition
from shared.db.schema import instances, patients, series, studies
from shared.dicom.json_model import keyword_values

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_CHUNK = 500  # ids in one IN (...) list

# The keys that are columns, by level: keyword -> column.
COLUMNS: dict[str, dict[str, Any]] = {
    "PATIENT": {
        "PatientID": patients.c.patient_id,
        "PatientName": patients.c.name,
        "PatientBirthDate": patients.c.birth_date,
        "PatientSex": patients.c.sex,
    },
    "STUDY": {
        "StudyInstanceUID": studies.c.study_instance_uid,
        "StudyDate": studies.c.study_date,
        "StudyTime": studies.c.study_time,
        "AccessionNumber": studies.c.accession_number,
        "StudyDescription": studies.c.description,
        "ReferringPhysicianName": studies.c.referring_physician,
        "ModalitiesInStudy": studies.c.modalities,
        "NumberOfStudyRelatedSeries": studies.c.series_count,
        "NumberOfStudyRelatedInstances": studies.c.instance_count,
    },
    "SERIES": {
        "SeriesInstanceUID": series.c.series_instance_uid,
        "Modality": series.c.modality,
        "SeriesNumber": series.c.number,
        "SeriesDescription": series.c.description,
        "ProtocolName": series.c.protocol,
        "BodyPartExamined": series.c.body_part,
        "NumberOfSeriesRelatedInstances": series.c.instance_count,
    },
    "IMAGE": {
        "SOPInstanceUID": instances.c.sop_instance_uid,
        "SOPClassUID": instances.c.sop_class_uid,
        "InstanceNumber": instances.c.instance_number,
    },
}
# Keys the index computes for a patient (PS3.4 C.6.1.1.2, Table C.6-1).
PATIENT_COUNTS = {
    "NumberOfPatientRelatedStudies": sa.func.count(studies.c.id),
    "NumberOfPatientRelatedSeries": sa.func.sum(studies.c.series_count),
    "NumberOfPatientRelatedInstances": sa.func.sum(studies.c.instance_count),
}
# The keys whose values hold several values in one column, backslash-separated.
_MULTIPLE = frozenset({"ModalitiesInStudy"})
# The entity's own table, and how to reach one of its instances.
_ENTITY = {"PATIENT": patients.c.id, "STUDY": studies.c.id, "SERIES": series.c.id}


class QueryError(ValueError):
    """A query that cannot be answered as asked (a level the root does not have)."""


class TooManyMatches(Exception):
    """More entities match than the limit allows."""


@dataclass(frozen=True)
class Query:
    level: str
    patient_root: bool
    conditions: list[Condition]  # keys with a value to match
    returned: list[str]  # every key asked for, by keyword
    accounts: frozenset[str] | None = None  # the calling AE's scope; None: every account


@dataclass
class Match:
    """One matching entity: its keys' values as text, and its header when one was read."""

    values: dict[str, list[str]]
    header: dict[str, Any] | None = None
    key: int = 0

    def text_values(self, keyword: str) -> list[str]:
        if keyword in self.values:
            return self.values[keyword]
        return keyword_values(self.header or {}, keyword)

    def header_element(self, tag: int) -> DataElement | None:
        """The element as the header holds it (a sequence whole), None when it is absent."""
        key = f"{tag:08X}"
        element = (self.header or {}).get(key)
        if element is None:
            return None
        try:
            found: DataElement = Dataset.from_json({key: element})[tag]
        except Exception:  # a value the header kept that pydicom will not take back
            return None
        return found


def _columns(level: str) -> dict[str, Any]:
    """The column keys a query at ``level`` can match and return."""
    depth = LEVELS.index(level)
    found: dict[str, Any] = {}
    for name in LEVELS[: depth + 1]:
        found.update(COLUMNS[name])
    if level == "PATIENT":
        found.update(PATIENT_COUNTS)
    return found


def check_level(level: str, patient_root: bool) -> None:
    if level not in LEVELS:
        raise QueryError(f"Query/Retrieve Level {level!r} is none of {', '.join(LEVELS)}")
    if level == "PATIENT" and not patient_root:
        raise QueryError("the Study Root model has no PATIENT level")


# What a retrieval needs of each instance besides its keys: its file and how it is encoded.
FILES = {
    "_path": instances.c.path,
    "_transfer_syntax": instances.c.transfer_syntax_uid,
    "_sop_class": instances.c.sop_class_uid,
    "_sop_instance": instances.c.sop_instance_uid,
}


async def search(
    connection: AsyncConnection, query: Query, limit: int, extra: dict[str, Any] | None = None
) -> list[Match]:
    """The entities matching ``query``, with the ``extra`` columns; :class:`TooManyMatches`
    past ``limit``."""
    check_level(query.level, query.patient_root)
    columns = {**_columns(query.level), **(extra or {})}
    header_keys = [k for k in query.returned if k not in columns]
    statement = _select(query, columns, connection.dialect.name)
    column_conditions = [c for c in query.conditions if c.keyword in columns]
    header_conditions = [c for c in query.conditions if c.keyword not in columns]
    candidates: list[Match] = []
    result = await connection.stream(statement)
    async for row in result:
        match = _match(row._mapping, columns)
        if all(c.matches(match.text_values(c.keyword)) for c in column_conditions):
            candidates.append(match)
            if not header_conditions and len(candidates) > limit:
                await result.close()
                raise TooManyMatches(limit)
    if header_keys or header_conditions:
        await _read_headers(connection, query.level, candidates)
        candidates = [
            m
            for m in candidates
            if all(c.matches(m.text_values(c.keyword)) for c in header_conditions)
        ]
        if len(candidates) > limit:
            raise TooManyMatches(limit)
    if "SOPClassesInStudy" in query.returned and query.level == "STUDY":
        await _sop_classes(connection, candidates)
    return candidates


def _select(query: Query, columns: dict[str, Any], dialect: str = "sqlite") -> sa.Select[Any]:
    level = query.level
    selected = [c.label(k) for k, c in columns.items()]
    if level == "PATIENT":
        statement = (
            sa.select(patients.c.id.label("_key"), *selected)
            .select_from(patients.join(studies, studies.c.patient_fk == patients.c.id))
            .group_by(patients.c.id)
        )
    else:
        # Every indexed study has its patient; the join is outer only so that a row the indexer
        # left without one still shows. A condition on the patient makes it inner, which lets
        # the database start from the patient's index (a name, an ID) instead of every study.
        on_patient = any(c.keyword in COLUMNS["PATIENT"] for c in query.conditions)
        join = studies.join if on_patient else studies.outerjoin
        source: Any = join(patients, studies.c.patient_fk == patients.c.id)
        key = studies.c.id
        if level in ("SERIES", "IMAGE"):
            source = source.join(series, series.c.study_fk == studies.c.id)
            key = series.c.id
        if level == "IMAGE":
            source = source.join(instances, instances.c.series_fk == series.c.id)
            key = instances.c.id
        statement = sa.select(key.label("_key"), *selected).select_from(source)
    for condition in query.conditions:
        column = columns.get(condition.keyword)
        prefix = condition.folded_prefix() if condition.keyword == "PatientName" else None
        if prefix is not None:
            # patients.search_text is the name and ID folded: "muller hans pid-7", letters,
            # digits and spaces only, so neither GLOB's nor LIKE's wildcards can be in it.
            # SQLite uses an index for GLOB (LIKE ignores case, which its index does not);
            # PostgreSQL for LIKE, with the pattern operator class (migration 0007).
            text = patients.c.search_text
            if dialect == "sqlite":
                statement = statement.where(text.op("GLOB")(prefix + "*"))
            else:
                statement = statement.where(text.like(prefix + "%"))
        elif column is not None and condition.keyword not in PATIENT_COUNTS:
            narrowed = _narrow(column, condition)
            if narrowed is not None:
                statement = statement.where(narrowed)
    if query.accounts is not None:
        statement = statement.where(studies.c.account.in_(sorted(query.accounts)))
    return statement.order_by(sa.text("_key"))


def _narrow(column: Any, condition: Condition) -> Any:
    hint = condition.sql_hint()
    if hint is None or condition.keyword in _MULTIPLE:
        return None
    how, values = hint
    if how == "in":
        return column.in_(values)
    if how == "range":
        low, high = values
        bounds = [column >= low] if low else []
        bounds += [column <= high] if high else []
        return sa.and_(*bounds) if bounds else None
    return column.like(values[0], escape="\\")


def _match(row: Any, columns: dict[str, Any]) -> Match:
    values: dict[str, list[str]] = {}
    for keyword in columns:
        value = row[keyword]
        if value is None or value == "":
            values[keyword] = []
        elif keyword in _MULTIPLE:
            values[keyword] = [part for part in str(value).split("\\") if part]
        else:
            values[keyword] = [str(value)]
    return Match(values, key=int(row["_key"]))


async def _read_headers(connection: AsyncConnection, level: str, matches: list[Match]) -> None:
    """Give each match the header of one of its instances (at IMAGE level, its own)."""
    by_key = {m.key: m for m in matches}
    keys = list(by_key)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        if level == "IMAGE":
            statement = sa.select(instances.c.id, instances.c.header).where(
                instances.c.id.in_(chunk)
            )
        else:
            first = _first_instances(level, chunk)
            statement = sa.select(first.c.key, instances.c.header).join(
                instances, instances.c.id == first.c.instance
            )
        for key, header in await connection.execute(statement):
            by_key[int(key)].header = header if isinstance(header, dict) else None


def _first_instances(level: str, keys: Iterable[int]) -> Any:
    """The first-indexed instance of each entity: (key, instance)."""
    source: Any = instances.join(series, instances.c.series_fk == series.c.id)
    if level != "SERIES":
        source = source.join(studies, series.c.study_fk == studies.c.id)
    entity = _ENTITY[level] if level != "PATIENT" else studies.c.patient_fk
    return (
        sa.select(entity.label("key"), sa.func.min(instances.c.id).label("instance"))
        .select_from(source)
        .where(entity.in_(list(keys)))
        .group_by(entity)
        .subquery()
    )


async def _sop_classes(connection: AsyncConnection, matches: list[Match]) -> None:
    by_key = {m.key: m for m in matches}
    keys = list(by_key)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        statement = (
            sa.select(series.c.study_fk, instances.c.sop_class_uid)
            .select_from(instances.join(series, instances.c.series_fk == series.c.id))
            .where(series.c.study_fk.in_(chunk))
            .distinct()
        )
        for study, sop_class in await connection.execute(statement):
            by_key[int(study)].values.setdefault("SOPClassesInStudy", []).append(sop_class)
    for match in matches:
        match.values.setdefault("SOPClassesInStudy", []).sort()
