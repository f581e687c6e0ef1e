"""The audit trail: one row per action, written in the same transaction as the action itself
where the action is the index's (filing, indexing, re-filing, forwarding, accounts), so the
trail and the index never disagree; the receiver, which has no database, reports its own
(associations, transfers, queries, retrievals, security alerts) over the bus.

Each action's ``detail``:

- ``application_started`` / ``application_stopped``: ``roles``, ``host``, ``pid``,
  ``version``, and ``ae_title`` for a process that listens.
- ``association_accepted`` / ``association_refused``: ``calling_ae``, ``called_ae``,
  ``peer_address``, ``peer_port``, ``tls`` (bool), ``user`` (the user identity, if one was
  given), and for a refusal its ``reason``.
- ``transferred``: one per association and patient, at the association's end: ``calling_ae``,
  ``called_ae``, ``peer_address``, ``patient_id``, ``patient_name``, ``count`` and
  ``studies``: ``[{"study_instance_uid", "instances": [{"sop_class_uid",
  "sop_instance_uid"}]}]``.
- ``query``: ``calling_ae``, ``called_ae``, ``peer_address``, ``sop_class_uid``, ``level``,
  ``keys`` (keyword to the value asked for, as DICOM JSON values), ``matches``, ``status``.
- ``exported``: one per retrieval (or forwarded batch) and patient: ``operation`` (``C-MOVE``,
  ``C-GET`` or ``forward``), ``calling_ae`` (who asked; our AE for a forward),
  ``destination`` (the AE sent to), ``destination_address``, ``patient_id``, ``patient_name``,
  ``count``, ``failed`` and ``studies`` as for ``transferred``.
- ``account_changed``: ``account``, ``change`` (``added``, ``removed``, ``alias_added``,
  ``seeded``), ``physicians``, ``by`` (the operating-system user).
- ``security_alert``: ``alert`` (``tls_handshake``, ``unknown_ae``, ``malformed_pdu``,
  ``certificate``, ``user_identity``), ``reason``, ``peer_address``, ``peer_port``,
  ``calling_ae`` when known.
- per instance: ``received`` (``calling_ae``, ``peer_address``, ``size``, ...), ``refused``
  (``status``, ``reason``, ``calling_ae``, ``peer_address``, ...), ``filed`` / ``replaced`` /
  ``duplicate`` (``account``, ``path``), ``quarantined`` (``reason``, ``path``), ``indexed``;
  per study: ``refiled``, ``sheet_written``, ``hook_ran``.
"""

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
    APPLICATION_STARTED = "application_started"
    APPLICATION_STOPPED = "application_stopped"
    ASSOCIATION_ACCEPTED = "association_accepted"
    ASSOCIATION_REFUSED = "association_refused"
    TRANSFERRED = "transferred"
    QUERY = "query"
    EXPORTED = "exported"
    ACCOUNT_CHANGED = "account_changed"
    SECURITY_ALERT = "security_alert"


# The events that name their patient in their detail (``patient_id``, ``patient_name``).
PATIENT_EVENTS = (Action.TRANSFERRED.value, Action.EXPORTED.value)


@dataclass(frozen=True)
class AuditEvent:
    action: Action
    service: str
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None  # the index's number for it, once recorded


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
        # Transfers and exports name their patient (one may span several studies).
        patient_ids = sa.select(patients.c.patient_id).where(
            patients.c.search_text.contains(needle, autoescape=True)
        )
        naming = sa.and_(
            audit_events.c.event.in_(PATIENT_EVENTS),
            audit_events.c.detail["patient_id"].as_string().in_(patient_ids),
        )
        query = query.where(sa.or_(audit_events.c.study_instance_uid.in_(of_patient), naming))
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
        id=row["id"],
    )
