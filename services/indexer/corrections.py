"""Corrected re-sends: the latest received version of an instance is the truth everywhere.

A modality that re-sends an instance with the same SOP Instance UID and other content (a
corrected patient name, a fixed series description) means the new values. When the indexer
meets such a correction, its values overwrite those of its patient, study and series rows
(empty values leave what is there), and the study moves to the corrected patient. Each row
remembers the received time of the values it holds (``attributes_from``), and a correction
only overwrites values at most as recent as itself: corrections of one study indexed in any
order, by any number of indexers, leave the newest one's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.indexer.header import IndexedInstance
from services.indexer.rollup import fit
from shared.db.schema import instances, series
from shared.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class IndexedRow:
    """What the index holds of an instance before a batch is written."""

    received_at: datetime
    content_hash: str | None
    path: str
    size: int
    series_fk: int
    series_instance_uid: str


@dataclass(frozen=True)
class Correction:
    """Values a corrected instance brings to the row keyed ``key``."""

    key: str
    item: IndexedInstance
    values: dict[str, Any]


async def indexed_rows(connection: AsyncConnection, uids: Sequence[str]) -> dict[str, IndexedRow]:
    rows = await connection.execute(
        sa.select(
            instances.c.sop_instance_uid,
            instances.c.received_at,
            instances.c.content_hash,
            instances.c.path,
            instances.c.size,
            instances.c.series_fk,
            series.c.series_instance_uid,
        )
        .join(series, series.c.id == instances.c.series_fk)
        .where(instances.c.sop_instance_uid.in_(uids))
    )
    return {
        row.sop_instance_uid: IndexedRow(
            row.received_at,
            row.content_hash,
            row.path,
            row.size,
            row.series_fk,
            row.series_instance_uid,
        )
        for row in rows
    }


def corrections_of(
    newest: dict[str, IndexedInstance], before: dict[str, IndexedRow]
) -> dict[str, IndexedInstance]:
    """The instances of a batch that correct an indexed one: at least as recent, and with
    other content, another path or another series."""
    corrected: dict[str, IndexedInstance] = {}
    for uid, item in newest.items():
        row = before.get(uid)
        if row is None or item.message.received_at < row.received_at:
            continue
        now = (
            item.instance["content_hash"],
            item.message.path,
            item.instance["size"],
            item.message.series_instance_uid,
        )
        if now != (row.content_hash, row.path, row.size, row.series_instance_uid):
            corrected[uid] = item
    return corrected


async def correct(
    connection: AsyncConnection, table: sa.Table, key: str, corrections: list[Correction]
) -> list[str]:
    """Overwrite each keyed row with its newest correction's non-empty values, unless the row
    holds values more recent still; return the keys whose values changed."""
    newest: dict[str, Correction] = {}
    for correction in sorted(corrections, key=lambda c: c.item.message.received_at):
        newest[correction.key] = correction
    changed: list[str] = []
    for name in sorted(newest):  # the lock order
        correction = newest[name]
        at = correction.item.message.received_at
        values = {k: v for k, v in fit(table, correction.values).items() if v is not None}
        row = (
            (
                await connection.execute(
                    sa.select(
                        table.c.id, table.c.attributes_from, *(table.c[k] for k in values)
                    ).where(table.c[key] == name)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            continue
        if row["attributes_from"] is not None and row["attributes_from"] > at:
            continue  # a more recent correction was indexed first
        changes = {k: v for k, v in values.items() if row[k] != v}
        await connection.execute(
            table.update().where(table.c.id == row["id"]).values(**changes, attributes_from=at)
        )
        if changes:
            changed.append(name)
            log.info(
                "index.corrected",
                level=table.name,
                key=name,
                sop_instance_uid=correction.item.message.sop_instance_uid,
                attributes=sorted(changes),
            )
    return changed
