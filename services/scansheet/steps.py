"""Modality Performed Procedure Steps, recorded from ``mpps.updated`` messages.

The receiver has no database, so it passes on what each N-CREATE and N-SET said and the steps
are merged here. A step only moves forward (IN PROGRESS, then COMPLETED or DISCONTINUED, which
are final, as PS3.4 F.7.2.2 has it), so a redelivered or late N-CREATE cannot undo its N-SET.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scansheet.completion import as_list
from shared.db.schema import mpps_steps
from shared.messages import MppsUpdated

FINAL = frozenset({"COMPLETED", "DISCONTINUED"})
PENDING_PER_POLL = 100


@dataclass(frozen=True)
class Step:
    step_uid: str
    status: str | None
    study_instance_uids: list[str]
    referenced_sop_instance_uids: list[str]


def _merged_status(known: str | None, offered: str | None) -> str | None:
    if known in FINAL or offered is None:
        return known
    return offered


async def record_step(connection: AsyncConnection, message: MppsUpdated, now: datetime) -> Step:
    """Merge the message into its step's row (within the caller's transaction)."""
    row = (
        await connection.execute(
            sa.select(mpps_steps).where(mpps_steps.c.step_uid == message.step_uid).with_for_update()
        )
    ).one_or_none()
    if row is None:
        step = Step(
            message.step_uid,
            message.status,
            sorted(set(message.study_instance_uids)),
            list(message.referenced_sop_instance_uids or []),
        )
        await connection.execute(
            sa.insert(mpps_steps).values(
                step_uid=step.step_uid,
                status=step.status,
                study_instance_uids=step.study_instance_uids,
                referenced_sop_instance_uids=step.referenced_sop_instance_uids,
                calling_ae=message.calling_ae[:16],
                created_at=now,
                updated_at=now,
            )
        )
        return step
    final = row.status in FINAL
    referenced = as_list(row.referenced_sop_instance_uids)
    if message.referenced_sop_instance_uids is not None and not final:
        referenced = list(message.referenced_sop_instance_uids)
    step = Step(
        message.step_uid,
        _merged_status(row.status, message.status),
        sorted(set(as_list(row.study_instance_uids)) | set(message.study_instance_uids)),
        referenced,
    )
    await connection.execute(
        sa.update(mpps_steps)
        .where(mpps_steps.c.step_uid == step.step_uid)
        .values(
            status=step.status,
            study_instance_uids=step.study_instance_uids,
            referenced_sop_instance_uids=step.referenced_sop_instance_uids,
            updated_at=now,
        )
    )
    return step


async def completed_steps_pending(connection: AsyncConnection) -> list[Step]:
    """COMPLETED steps whose studies have not been completed for them yet."""
    rows = await connection.execute(
        sa.select(mpps_steps)
        .where(mpps_steps.c.status == "COMPLETED", mpps_steps.c.announced_at.is_(None))
        .order_by(mpps_steps.c.updated_at)
        .limit(PENDING_PER_POLL)
    )
    return [
        Step(
            row.step_uid,
            row.status,
            as_list(row.study_instance_uids),
            as_list(row.referenced_sop_instance_uids),
        )
        for row in rows
    ]


async def mark_step_done(connection: AsyncConnection, step_uid: str, now: datetime) -> None:
    await connection.execute(
        sa.update(mpps_steps).where(mpps_steps.c.step_uid == step_uid).values(announced_at=now)
    )
