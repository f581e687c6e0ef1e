"""Upsert a batch of filed instances in one transaction, changing only what really changed.

Rows are de-duplicated and written level by level (patients, studies, series, instances),
each level sorted by its key, so concurrent indexers take row locks in one global order and
cannot deadlock. On PostgreSQL the study upsert locks the study row until the commit, so two
indexers never count the same study at once: counts are recomputed, not incremented, and are
exact whatever the redeliveries.

Patient, study and series attributes come from the first instance indexed; a later new
instance only fills what is still empty, and a study-level value that disagrees with the kept
one is logged and recorded in ``studies.conflicts``. A corrected re-send (an instance indexed
before, received again later with other content) is the truth: its values overwrite its
patient's, study's and series' (see :mod:`services.indexer.corrections`). An instance row
changes only when a message at least as recent as the indexed one brings a different path,
content or series; each such change, and each new instance, gets one ``indexed`` audit event
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.indexer.corrections import Correction, correct, corrections_of, indexed_rows
from services.indexer.header import STUDY_ATTRIBUTES, IndexedInstance
from services.indexer.rollup import fit, prune_conflicts, record_conflicts, recount
from shared.db import audit
from shared.db.schema import instances, patients, series, studies
from shared.log import get_logger

log = get_logger(__name__)

SERVICE = "indexer"
PATIENT_FILL = ("name", "birth_date", "sex", "search_text")
SERIES_FILL = tuple(
    c.name
    for c in series.columns
    if c.name not in ("id", "series_instance_uid", "study_fk", "instance_count", "attributes_from")
)
STUDY_FILL = (*STUDY_ATTRIBUTES, "account", "study_folder", "patient_fk")
_INSTANCE_CHANGE = ("path", "content_hash", "size", "series_fk")


@dataclass(frozen=True)
class BatchOutcome:
    inserted: int
    updated: int
    unchanged: int
    conflicts: int


async def index_batch(connection: AsyncConnection, batch: list[IndexedInstance]) -> BatchOutcome:
    """Write ``batch`` within the caller's transaction."""
    # Oldest first, so that "first" within a batch means first received; the newest message
    # of an instance sent twice in one batch is the one kept.
    ordered = sorted(batch, key=lambda i: i.message.received_at)
    newest = {i.message.sop_instance_uid: i for i in ordered}
    uids = sorted(newest)
    before = await indexed_rows(connection, uids)
    corrected = corrections_of(newest, before)
    arrivals = [i for i in ordered if i.message.sop_instance_uid not in corrected]
    upsert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    now = datetime.now(UTC)

    patient_ids = await _fill(
        connection,
        upsert,
        patients,
        "identity",
        ordered,
        lambda i: {**i.patient, "updated_at": now},
        PATIENT_FILL,
        extra={"updated_at": sa.literal(now, patients.c.updated_at.type)},
    )
    await correct(
        connection,
        patients,
        "identity",
        [
            Correction(i.patient["identity"], i, _fields(i.patient, PATIENT_FILL))
            for i in corrected.values()
        ],
    )

    def study_values(item: IndexedInstance) -> dict[str, Any]:
        return {**item.study, "patient_fk": patient_ids[item.patient["identity"]]}

    study_ids = await _fill(
        connection, upsert, studies, "study_instance_uid", ordered, study_values, STUDY_FILL
    )
    conflicts = await record_conflicts(connection, arrivals, sorted(study_ids))
    corrected_studies = await correct(
        connection,
        studies,
        "study_instance_uid",
        [
            Correction(
                i.message.study_instance_uid,
                i,
                {**_fields(i.study, STUDY_ATTRIBUTES), "patient_fk": study_values(i)["patient_fk"]},
            )
            for i in corrected.values()
        ],
    )

    await prune_conflicts(connection, corrected_studies)

    def series_values(item: IndexedInstance) -> dict[str, Any]:
        return {**item.series, "study_fk": study_ids[item.message.study_instance_uid]}

    series_ids = await _fill(
        connection, upsert, series, "series_instance_uid", ordered, series_values, SERIES_FILL
    )
    await correct(
        connection,
        series,
        "series_instance_uid",
        [
            Correction(i.message.series_instance_uid, i, _fields(i.series, SERIES_FILL))
            for i in corrected.values()
        ],
    )

    statement = upsert(instances)
    changed_rows = await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["sop_instance_uid"],
            set_={c.name: statement.excluded[c.name] for c in instances.columns if c.name != "id"},
            where=sa.and_(
                statement.excluded.received_at >= instances.c.received_at,
                sa.or_(
                    *(
                        instances.c[name].is_distinct_from(statement.excluded[name])
                        for name in _INSTANCE_CHANGE
                    )
                ),
            ),
        ).returning(instances.c.sop_instance_uid, instances.c.series_fk),
        [
            {
                **fit(instances, newest[uid].instance),
                "received_at": newest[uid].message.received_at,
                "series_fk": series_ids[newest[uid].message.series_instance_uid],
            }
            for uid in uids
        ],
    )
    changed = {row.sop_instance_uid: row.series_fk for row in changed_rows}
    if changed:
        touched = set(changed.values()) | {
            before[uid].series_fk for uid in changed if uid in before
        }
        await recount(connection, touched)
        await audit.record(connection, [_indexed(newest[uid], uid in before) for uid in changed])
    inserted = sum(uid not in before for uid in changed)
    return BatchOutcome(inserted, len(changed) - inserted, len(uids) - len(changed), conflicts)


def _fields(values: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: values[name] for name in names if name in values}


async def _fill(
    connection: AsyncConnection,
    upsert: Any,
    table: sa.Table,
    key: str,
    ordered: list[IndexedInstance],
    values: Callable[[IndexedInstance], dict[str, Any]],
    fill: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Insert each key's first instance's row, or fill the existing row's empty columns; a
    row with nothing to fill is left unwritten (but locked, on PostgreSQL, until the commit).
    Return the id of each key's row."""
    first: dict[str, IndexedInstance] = {}
    for item in ordered:
        first.setdefault(values(item)[key], item)
    keys = sorted(first)  # the lock order
    statement = upsert(table)
    excluded = statement.excluded
    # One statement, many parameter sets: compiled once and cached, whatever the batch size.
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[key],
            set_={
                **{name: sa.func.coalesce(table.c[name], excluded[name]) for name in fill},
                **(extra or {}),
            },
            where=sa.or_(
                *(sa.and_(table.c[name].is_(None), excluded[name].is_not(None)) for name in fill)
            ),
        ),
        [
            {**fit(table, values(first[name])), "attributes_from": first[name].message.received_at}
            for name in keys
        ],
    )
    rows = await connection.execute(
        sa.select(table.c[key], table.c.id).where(table.c[key].in_(keys))
    )
    return {row[0]: row[1] for row in rows}


def _indexed(item: IndexedInstance, existed: bool) -> audit.AuditEvent:
    return audit.AuditEvent(
        action=audit.Action.INDEXED,
        service=SERVICE,
        sop_instance_uid=item.message.sop_instance_uid,
        study_instance_uid=item.message.study_instance_uid,
        detail={
            "change": "updated" if existed else "inserted",
            "path": item.message.path,
            "content_hash": item.instance["content_hash"],
            "series_instance_uid": item.message.series_instance_uid,
        },
    )
