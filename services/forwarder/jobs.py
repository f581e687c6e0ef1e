"""The forwarding jobs in the index (``forwards``): recorded, claimed, settled, summed up.

A job is recorded once per rule and instance (a unique key), so a message delivered twice
records nothing twice; one already ``done`` is never sent again. A claim moves due jobs to
``sending`` with a lease; a sender that died mid-batch leaves them to be claimed again when the
lease has run out. The claim's UPDATE re-checks the state of each row it takes, so two
forwarders never take the same job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.forwarder.audit import exported
from shared.db import audit
from shared.db.schema import forwards

PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"


@dataclass(frozen=True)
class NewJob:
    rule: str
    destination: str
    sop_instance_uid: str
    study_instance_uid: str
    path: str


@dataclass(frozen=True)
class Job:
    id: int
    rule: str
    destination: str
    sop_instance_uid: str
    path: str
    attempts: int
    refusals: int


@dataclass(frozen=True)
class Outcome:
    """How a job ended this time: ``state`` done, pending (again, at ``retry_at``) or failed;
    ``refused``: the destination (or the file) was the trouble, not the network."""

    job: Job
    state: str
    reason: str | None = None
    retry_at: datetime | None = None
    refused: bool = False


async def record(engine: AsyncEngine, jobs: list[NewJob]) -> None:
    if not jobs:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "rule": job.rule,
            "destination": job.destination,
            "sop_instance_uid": job.sop_instance_uid,
            "study_instance_uid": job.study_instance_uid,
            "path": job.path,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for job in jobs
    ]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(forwards).on_conflict_do_nothing(
        index_elements=["rule", "sop_instance_uid"]
    )
    async with engine.begin() as connection:
        await connection.execute(statement, rows)


async def claim(engine: AsyncEngine, limit: int, lease: float) -> list[Job]:
    """Due jobs, taken for ``lease`` seconds (and those whose lease ran out)."""
    now = datetime.now(UTC)
    due = (
        sa.select(forwards.c.id)
        .where(forwards.c.state == PENDING, forwards.c.next_attempt_at <= now)
        .order_by(forwards.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    async with engine.begin() as connection:
        await connection.execute(
            forwards.update()
            .where(forwards.c.state == SENDING, forwards.c.claimed_until < now)
            .values(state=PENDING, updated_at=now)
        )
        taken = await connection.execute(
            forwards.update()
            .where(forwards.c.id.in_(due), forwards.c.state == PENDING)
            .values(state=SENDING, claimed_until=now + timedelta(seconds=lease), updated_at=now)
            .returning(
                forwards.c.id,
                forwards.c.rule,
                forwards.c.destination,
                forwards.c.sop_instance_uid,
                forwards.c.path,
                forwards.c.attempts,
                forwards.c.refusals,
            )
        )
        return sorted((Job(*row) for row in taken), key=lambda job: job.id)


async def settle(
    engine: AsyncEngine,
    outcomes: list[Outcome],
    calling_ae: str = "",
    addresses: dict[str, str] | None = None,
) -> None:
    """Record how each job ended, and what was sent in the audit trail (``calling_ae``: ours;
    ``addresses``: where each destination is), in one transaction."""
    if not outcomes:
        return
    now = datetime.now(UTC)
    statement = (
        forwards.update()
        .where(forwards.c.id == sa.bindparam("job_id"))
        .values(
            state=sa.bindparam("new_state"),
            attempts=sa.bindparam("new_attempts"),
            refusals=sa.bindparam("new_refusals"),
            reason=sa.bindparam("new_reason"),
            next_attempt_at=sa.bindparam("retry_at"),
            claimed_until=None,
            updated_at=now,
        )
    )
    rows = [
        {
            "job_id": outcome.job.id,
            "new_state": outcome.state,
            "new_attempts": outcome.job.attempts + 1,
            "new_refusals": outcome.job.refusals + outcome.refused,
            "new_reason": outcome.reason,
            "retry_at": outcome.retry_at or now,
        }
        for outcome in outcomes
    ]
    sent = [(o.job.destination, o.job.sop_instance_uid) for o in outcomes if o.state == DONE]
    async with engine.begin() as connection:
        await connection.execute(statement, rows)
        if sent:
            events = await exported(connection, sent, calling_ae, addresses or {})
            await audit.record(connection, events)


async def retry_failed(engine: AsyncEngine) -> int:
    """Make every failed job due again (after the cause was fixed); how many."""
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        result = await connection.execute(
            forwards.update()
            .where(forwards.c.state == FAILED)
            .values(state=PENDING, refusals=0, next_attempt_at=now, updated_at=now)
        )
    return int(result.rowcount or 0)


async def summary(engine: AsyncEngine, failures: int = 20) -> dict[str, Any]:
    """Counts by rule, destination and state, and the latest failed jobs with their reason."""
    async with engine.connect() as connection:
        counts = await connection.execute(
            sa.select(forwards.c.rule, forwards.c.destination, forwards.c.state, sa.func.count())
            .group_by(forwards.c.rule, forwards.c.destination, forwards.c.state)
            .order_by(forwards.c.rule, forwards.c.destination, forwards.c.state)
        )
        latest = await connection.execute(
            sa.select(
                forwards.c.rule,
                forwards.c.destination,
                forwards.c.sop_instance_uid,
                forwards.c.study_instance_uid,
                forwards.c.state,
                forwards.c.attempts,
                forwards.c.reason,
                forwards.c.updated_at,
            )
            .where(forwards.c.reason.is_not(None), forwards.c.state != DONE)
            .order_by(forwards.c.updated_at.desc())
            .limit(failures)
        )
        by_rule: dict[tuple[str, str], dict[str, int]] = {}
        for rule, destination, state, count in counts:
            by_rule.setdefault((rule, destination), {})[state] = int(count)
        return {
            "rules": [
                {"rule": rule, "destination": destination, **states}
                for (rule, destination), states in by_rule.items()
            ],
            "problems": [
                {
                    "rule": row.rule,
                    "destination": row.destination,
                    "sop_instance_uid": row.sop_instance_uid,
                    "study_instance_uid": row.study_instance_uid,
                    "state": row.state,
                    "attempts": row.attempts,
                    "reason": row.reason,
                    "at": row.updated_at.isoformat(),
                }
                for row in latest
            ],
        }
