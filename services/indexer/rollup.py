"""What a study and its series sum up from their instances, and where instances disagree.

Counts, modalities and first and last received times are recomputed from the rows, never
incremented, so redeliveries and concurrent indexers cannot skew them (the caller holds the
study rows locked). Study-level values that disagree with the kept ones are added to
``studies.conflicts``, bounded per attribute.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.indexer.header import STUDY_ATTRIBUTES, IndexedInstance
from shared.db.schema import instances, series, studies
from shared.log import get_logger

log = get_logger(__name__)

MAX_CONFLICT_VALUES = 10  # per attribute: enough to see the disagreement, bounded in size


def fit(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """Values cut to their column's width: PostgreSQL refuses what SQLite would keep."""
    fitted = dict(values)
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            fitted[name] = value[:length]
    return fitted


async def record_conflicts(
    connection: AsyncConnection, ordered: list[IndexedInstance], study_uids: list[str]
) -> int:
    """Add the values this batch offers beside the kept ones to ``studies.conflicts``."""
    columns = [studies.c[name] for name in STUDY_ATTRIBUTES]
    kept_rows = await connection.execute(
        sa.select(studies.c.id, studies.c.study_instance_uid, studies.c.conflicts, *columns).where(
            studies.c.study_instance_uid.in_(study_uids)
        )
    )
    updates: list[dict[str, Any]] = []
    for row in kept_rows.mappings():
        known: dict[str, list[str]] = {k: list(v) for k, v in (row["conflicts"] or {}).items()}
        fresh: dict[str, list[str]] = {}
        for item in ordered:
            if item.message.study_instance_uid != row["study_instance_uid"]:
                continue
            for name in STUDY_ATTRIBUTES:
                offered = fit(studies, item.study)[name]
                seen = known.setdefault(name, [])
                if offered not in (None, row[name], *seen) and len(seen) < MAX_CONFLICT_VALUES:
                    seen.append(offered)
                    fresh.setdefault(name, []).append(offered)
        if fresh:
            log.warning(
                "index.study_conflict",
                study_instance_uid=row["study_instance_uid"],
                kept={name: row[name] for name in fresh},
                offered=fresh,
            )
            updates.append({"key": row["id"], "conflicts": {k: v for k, v in known.items() if v}})
    if updates:
        await connection.execute(
            studies.update()
            .where(studies.c.id == sa.bindparam("key"))
            .values(conflicts=sa.bindparam("conflicts")),
            updates,
        )
    return len(updates)


async def prune_conflicts(connection: AsyncConnection, study_uids: list[str]) -> None:
    """Drop from ``studies.conflicts`` the values a correction made the kept ones."""
    if not study_uids:
        return
    rows = await connection.execute(
        sa.select(
            studies.c.id, studies.c.conflicts, *(studies.c[name] for name in STUDY_ATTRIBUTES)
        ).where(studies.c.study_instance_uid.in_(study_uids), studies.c.conflicts.is_not(None))
    )
    for row in rows.mappings().all():
        kept = {
            name: [value for value in values if value != row[name]]
            for name, values in (row["conflicts"] or {}).items()
        }
        await connection.execute(
            studies.update()
            .where(studies.c.id == row["id"])
            .values(conflicts={name: values for name, values in kept.items() if values} or None)
        )


async def recount(connection: AsyncConnection, series_ids: set[int]) -> None:
    """Recompute series and study counts, modalities and received times from the rows."""
    counts = dict.fromkeys(series_ids, 0)
    for row in await connection.execute(
        sa.select(instances.c.series_fk, sa.func.count())
        .where(instances.c.series_fk.in_(series_ids))
        .group_by(instances.c.series_fk)
    ):
        counts[row[0]] = row[1]
    await connection.execute(
        series.update()
        .where(series.c.id == sa.bindparam("key"))
        .values(instance_count=sa.bindparam("count")),
        [{"key": key, "count": count} for key, count in counts.items()],
    )
    study_ids = sa.select(series.c.study_fk).where(series.c.id.in_(series_ids)).scalar_subquery()
    totals = await connection.execute(
        sa.select(
            series.c.study_fk,
            sa.func.count(sa.distinct(series.c.id)),
            sa.func.count(instances.c.id),
            sa.func.min(instances.c.received_at),
            sa.func.max(instances.c.received_at),
        )
        .select_from(series.outerjoin(instances, instances.c.series_fk == series.c.id))
        .where(series.c.study_fk.in_(study_ids))
        .group_by(series.c.study_fk)
    )
    modalities: dict[int, set[str]] = {}
    for row in await connection.execute(
        sa.select(series.c.study_fk, series.c.modality)
        .where(series.c.study_fk.in_(study_ids), series.c.modality.is_not(None))
        .distinct()
    ):
        modalities.setdefault(row[0], set()).add(row[1])
    await connection.execute(
        studies.update()
        .where(studies.c.id == sa.bindparam("key"))
        .values(
            series_count=sa.bindparam("series_count"),
            instance_count=sa.bindparam("instance_count"),
            first_received_at=sa.bindparam("first", type_=studies.c.first_received_at.type),
            last_received_at=sa.bindparam("last", type_=studies.c.last_received_at.type),
            modalities=sa.bindparam("modalities"),
        ),
        [
            {
                "key": row[0],
                "series_count": row[1],
                "instance_count": row[2],
                "first": row[3],
                "last": row[4],
                # Separated as in (0008,0061) Modalities in Study.
                "modalities": "\\".join(sorted(modalities.get(row[0], ()))) or None,
            }
            for row in totals
        ],
    )
