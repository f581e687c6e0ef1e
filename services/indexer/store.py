"""Upsert a batch of filed instances in one transaction, changing only what really changed.

Rows are de-duplicated and written level by level (patients, studies, series, instances),
each level sorted by its key, so concurrent indexers take row locks in one global order and
cannot deadlock. On PostgreSQL the study upsert locks the study row until the commit, so two
indexers never count the same study at once: counts are recomputed, not incremented, and are
exact whatever the redeliveries.

Study and series attributes follow "first indexed wins": a later instance only fills what is
still empty; a study-level value that disagrees with the kept one is logged and recorded in
``studies.conflicts``. An instance row changes only when a message at least as recent as the
indexed one brings a different path, content or series; each such change, and each new
instance, gets one ``indexed`` audit event in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.indexer.header import STUDY_ATTRIBUTES, IndexedInstance
from services.indexer.rollup import fit, record_conflicts, recount
from shared.db import audit
from shared.db.schema import instances, patients, series, studies
from shared.log import get_logger

log = get_logger(__name__)

SERVICE = "indexer"
_PATIENT_FILL = ("name", "birth_date", "sex")
_SERIES_FILL = tuple(
    c.name
    for c in series.columns
    if c.name not in ("id", "series_instance_uid", "study_fk", "instance_count")
)
_STUDY_FILL = (*STUDY_ATTRIBUTES, "account", "study_folder", "patient_fk")
_INSTANCE_CHANGE = ("path", "content_hash", "size", "series_fk")


@dataclass(frozen=True)
class BatchOutcome:
    inserted: int
    updated: int
    unchanged: int
    conflicts: int


def utc(moment: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; every one stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def index_batch(connection: AsyncConnection, batch: list[IndexedInstance]) -> BatchOutcome:
    """Write ``batch`` within the caller's transaction."""
    # Oldest first, so that "first" within a batch means first received; the newest message
    # of an instance sent twice in one batch is the one kept.
    ordered = sorted(batch, key=lambda i: utc(i.message.received_at))
    newest = {i.message.sop_instance_uid: i for i in ordered}
    upsert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert

    patient_rows = _first_by(ordered, lambda i: (i.patient["patient_id"], i.patient["issuer"]))
    now = datetime.now(UTC)
    await connection.execute(
        _fill_upsert(
            upsert(patients).values(
                [{**fit(patients, i.patient), "updated_at": now} for _, i in patient_rows]
            ),
            patients,
            ["patient_id", "issuer"],
            _PATIENT_FILL,
            extra={"updated_at": sa.literal(now, patients.c.updated_at.type)},
        )
    )
    patient_ids = await _ids(
        connection, patients, "patient_id", [key[0] for key, _ in patient_rows], extra="issuer"
    )

    study_rows = _first_by(ordered, lambda i: i.message.study_instance_uid)
    await connection.execute(
        _fill_upsert(
            upsert(studies).values(
                [
                    {
                        **fit(studies, i.study),
                        "patient_fk": patient_ids[(i.patient["patient_id"], i.patient["issuer"])],
                    }
                    for _, i in study_rows
                ]
            ),
            studies,
            ["study_instance_uid"],
            _STUDY_FILL,
        )
    )
    conflicts = await record_conflicts(connection, ordered, [key for key, _ in study_rows])
    study_ids = await _ids(connection, studies, "study_instance_uid", [k for k, _ in study_rows])

    series_rows = _first_by(ordered, lambda i: i.message.series_instance_uid)
    await connection.execute(
        _fill_upsert(
            upsert(series).values(
                [
                    {**fit(series, i.series), "study_fk": study_ids[i.message.study_instance_uid]}
                    for _, i in series_rows
                ]
            ),
            series,
            ["series_instance_uid"],
            _SERIES_FILL,
        )
    )
    series_ids = await _ids(connection, series, "series_instance_uid", [k for k, _ in series_rows])

    uids = sorted(newest)
    before = {
        row.sop_instance_uid: row.series_fk
        for row in await connection.execute(
            sa.select(instances.c.sop_instance_uid, instances.c.series_fk).where(
                instances.c.sop_instance_uid.in_(uids)
            )
        )
    }
    statement = upsert(instances).values(
        [
            {
                **fit(instances, newest[uid].instance),
                "received_at": utc(newest[uid].message.received_at),
                "series_fk": series_ids[newest[uid].message.series_instance_uid],
            }
            for uid in uids
        ]
    )
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
        ).returning(instances.c.sop_instance_uid, instances.c.series_fk)
    )
    changed = {row.sop_instance_uid: row.series_fk for row in changed_rows}
    if changed:
        touched = set(changed.values()) | {before[uid] for uid in changed if uid in before}
        await recount(connection, touched)
        await audit.record(connection, [_indexed(newest[uid], uid in before) for uid in changed])
    inserted = sum(uid not in before for uid in changed)
    return BatchOutcome(inserted, len(changed) - inserted, len(uids) - len(changed), conflicts)


def _first_by(ordered: list[IndexedInstance], key: Any) -> list[tuple[Any, IndexedInstance]]:
    """The first instance per key, sorted by key (the lock order)."""
    first: dict[Any, IndexedInstance] = {}
    for item in ordered:
        first.setdefault(key(item), item)
    return sorted(first.items(), key=lambda pair: pair[0])


def _fill_upsert(
    statement: Any,
    table: sa.Table,
    keys: list[str],
    fill: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> Any:
    """Insert, or fill the existing row's empty columns; a row with nothing to fill is left
    unwritten (but locked, on PostgreSQL, until the commit)."""
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={
            **{name: sa.func.coalesce(table.c[name], excluded[name]) for name in fill},
            **(extra or {}),
        },
        where=sa.or_(
            *(sa.and_(table.c[name].is_(None), excluded[name].is_not(None)) for name in fill)
        ),
    )


async def _ids(
    connection: AsyncConnection,
    table: sa.Table,
    key: str,
    values: list[str],
    extra: str | None = None,
) -> dict[Any, int]:
    columns = [table.c.id, table.c[key], *([table.c[extra]] if extra else [])]
    rows = await connection.execute(sa.select(*columns).where(table.c[key].in_(set(values))))
    return {(row[1], row[2]) if extra else row[1]: row[0] for row in rows}


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
