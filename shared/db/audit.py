"""The audit trail: one row per action on an instance, written in the same transaction as the
action itself, so the trail and the index never disagree."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import audit_events


class Action(enum.StrEnum):
    RECEIVED = "received"
    REFUSED = "refused"
    FILED = "filed"
    REPLACED = "replaced"
    REFILED = "refiled"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    INDEXED = "indexed"
    SHEET_WRITTEN = "sheet_written"
    HOOK_RAN = "hook_ran"


@dataclass(frozen=True)
class AuditEvent:
    action: Action
    service: str
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def record(connection: AsyncConnection, events: Sequence[AuditEvent]) -> None:
    """Add ``events`` within the caller's transaction."""
    if not events:
        return
    await connection.execute(
        audit_events.insert(),
        [
            {
                "at": event.at,
                "event": event.action.value,
                "sop_instance_uid": event.sop_instance_uid,
                "study_instance_uid": event.study_instance_uid,
                "service": event.service,
                "detail": event.detail,
            }
            for event in events
        ],
    )


async def history(
    connection: AsyncConnection,
    *,
    sop_instance_uid: str | None = None,
    study_instance_uid: str | None = None,
    action: Action | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Events, oldest first, narrowed by instance, study or action."""
    query = sa.select(audit_events).order_by(audit_events.c.at, audit_events.c.id).limit(limit)
    if sop_instance_uid is not None:
        query = query.where(audit_events.c.sop_instance_uid == sop_instance_uid)
    if study_instance_uid is not None:
        query = query.where(audit_events.c.study_instance_uid == study_instance_uid)
    if action is not None:
        query = query.where(audit_events.c.event == action.value)
    rows = (await connection.execute(query)).mappings()
    return [
        AuditEvent(
            action=Action(row["event"]),
            service=row["service"],
            sop_instance_uid=row["sop_instance_uid"],
            study_instance_uid=row["study_instance_uid"],
            detail=row["detail"] or {},
            at=row["at"],
        )
        for row in rows
    ]
