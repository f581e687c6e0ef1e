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

from shared.db.schema import audit_events, patients, studies
from shared.folding import fold


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
    return [_event(row) for row in rows]


async def search(
    connection: AsyncConnection,
    *,
    since: datetime | None = None,
    patient: str | None = None,
    study_instance_uid: str | None = None,
    action: Action | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """The newest ``limit`` events, oldest first: since a moment, about a study, of an
    action, or about a patient's studies (``patient`` matches name or ID as `studies
    --patient` does: without case, accents or punctuation)."""
    query = sa.select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
    if since is not None:
        query = query.where(audit_events.c.at >= since)
    if study_instance_uid is not None:
        query = query.where(audit_events.c.study_instance_uid == study_instance_uid)
    if action is not None:
        query = query.where(audit_events.c.event == action.value)
    if patient is not None:
        needle = fold(patient)
        of_patient = (
            sa.select(studies.c.study_instance_uid)
            .join(patients, studies.c.patient_fk == patients.c.id)
            .where(patients.c.search_text.contains(needle, autoescape=True))
        )
        query = query.where(audit_events.c.study_instance_uid.in_(of_patient))
    rows = list((await connection.execute(query.limit(limit))).mappings())
    return [_event(row) for row in reversed(rows)]


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        action=Action(row["event"]),
        service=row["service"],
        sop_instance_uid=row["sop_instance_uid"],
        study_instance_uid=row["study_instance_uid"],
        detail=row["detail"] or {},
        at=row["at"],
    )
