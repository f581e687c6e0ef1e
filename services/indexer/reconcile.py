"""Catch up at start-up: index what the audit trail says was filed but the index lacks.

The router writes a ``filed`` (or ``replaced``) audit event with the whole ``instance.filed``
message in its detail, in the same transaction as the filing; a re-file writes a ``refiled``
one with the instance's new place. So every filed instance whose
row is missing, or holds an older path than its latest filing, can be indexed from the trail
alone. On the in-process bus, queued messages die with the process: this is what makes the
embedded index whole again after a crash. It also picks up anything that was dead-lettered
and then fixed by hand.

The work is bounded: the trail is read ``indexer.reconcile_page`` events at a time (by id),
and what is due is written in batches of ``indexer.batch_size``. Files that are gone are
skipped with a warning: a newer filing, or the bus, will bring them. An instance that cannot
be indexed is logged with its reason and passed over; it never stops the catch-up. The
catch-up runs beside the consumer (see :mod:`services.indexer.service`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.indexer.consumer import Indexing
from services.indexer.header import IndexedInstance
from shared.bus import Retry
from shared.db.audit import Action
from shared.db.schema import audit_events, instances
from shared.log import get_logger
from shared.messages import InstanceFiled

log = get_logger(__name__)
# An audit event's id and detail, with the received time the index holds, if any.
Row = tuple[int, dict[str, Any] | None, datetime | None]


@dataclass
class Reconciled:
    events: int = 0
    due: int = 0
    indexed: int = 0
    missing: int = 0
    unreadable: int = 0
    failed: int = 0


async def reconcile(engine: AsyncEngine, indexing: Indexing, page: int, batch: int) -> Reconciled:
    """Index every filed instance the index is behind on; return the counts."""
    report = Reconciled()
    after = 0
    while True:
        rows = await indexing.patiently("reconcile.read", partial(_page, engine, after, page))
        if not rows:
            break
        after = rows[-1][0]
        report.events += len(rows)
        due = _due(rows)
        report.due += len(due)
        for start in range(0, len(due), batch):
            chunk = due[start : start + batch]
            reading = await asyncio.to_thread(indexing.read, chunk)
            report.missing += len(reading.missing)
            report.unreadable += len(reading.unreadable)
            if reading.indexed:
                await _write(indexing, reading.indexed, report)
    log.info(
        "index.reconciled",
        events=report.events,
        due=report.due,
        indexed=report.indexed,
        missing=report.missing,
        unreadable=report.unreadable,
        failed=report.failed,
    )
    return report


async def _write(indexing: Indexing, chunk: list[IndexedInstance], report: Reconciled) -> None:
    """Write a chunk; when it fails, each instance alone, so that one that cannot be indexed
    is reported and passed over rather than holding back the others (and every start-up)."""
    try:
        outcome = await indexing.write(chunk)
    except Retry:
        raise  # the database is away: the catch-up stops and is done again at the next start
    # Any other failure is this data's or a bug's: found by trying each instance alone.
    except Exception as error:
        if len(chunk) == 1:
            log.exception(
                "index.reconcile_failed",
                sop_instance_uid=chunk[0].message.sop_instance_uid,
                error=f"{type(error).__name__}: {error}",
            )
            report.failed += 1
            return
        for item in chunk:
            await _write(indexing, [item], report)
        return
    report.indexed += outcome.inserted + outcome.updated


async def _page(engine: AsyncEngine, after: int, page: int) -> list[Row]:
    query = (
        sa.select(audit_events.c.id, audit_events.c.detail, instances.c.received_at)
        .select_from(
            audit_events.outerjoin(
                instances, instances.c.sop_instance_uid == audit_events.c.sop_instance_uid
            )
        )
        .where(
            audit_events.c.event.in_(
                [Action.FILED.value, Action.REPLACED.value, Action.REFILED.value]
            ),
            audit_events.c.id > after,
        )
        .order_by(audit_events.c.id)
        .limit(page)
    )
    async with engine.connect() as connection:
        return [(row[0], row[1], row[2]) for row in await connection.execute(query)]


def _due(rows: list[Row]) -> list[InstanceFiled]:
    """The latest filing per instance, where the index lacks it or holds an older one."""
    latest: dict[str, InstanceFiled] = {}
    for event_id, detail, received_at in rows:
        try:
            message = InstanceFiled.model_validate((detail or {}).get("message"))
        except ValidationError as error:
            log.warning("index.audit_detail_unusable", audit_event=event_id, error=str(error))
            continue
        # Received time, not path, says which filing is newer: a replacement may be filed at
        # the path of the copy it replaces. An identical re-send, which left the row as it
        # was, is read again at each start-up and changes nothing.
        if received_at is not None and received_at >= message.received_at:
            continue
        known = latest.get(message.sop_instance_uid)
        if known is None or known.received_at <= message.received_at:
            latest[message.sop_instance_uid] = message
    return list(latest.values())
