"""The study monitor's state in the index: claiming a study's completion, and MPPS steps.

A study is announced for one ``last_received_at`` at a time. The claim is one conditional
UPDATE that sets ``announced_for`` to the study's ``last_received_at``: two monitors (in any
processes) racing for one study both try it, and only one UPDATE matches, since PostgreSQL
re-reads the row's condition after the first commits and SQLite takes the write lock first.
A claim whose sheet is still not written after ``reannounce_after`` may be claimed again, so
a lost message or a crash between claim and publish delays a sheet, never loses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import instances, series, studies
from shared.messages import StudyReady

CLAIMS_PER_POLL = 100  # an archive's first start must not announce every old study at once


@dataclass(frozen=True)
class Claim:
    """A study this monitor won the right to announce, for its ``last_received_at``."""

    study_instance_uid: str
    last_received_at: datetime
    announced_at: datetime


def _due(now: datetime, reannounce_after: float) -> sa.ColumnElement[bool]:
    """Not yet announced for this quiet period (or announced long ago with no sheet since),
    and the sheet on disk, if any, older than the last instance."""
    return sa.and_(
        studies.c.last_received_at.is_not(None),
        studies.c.study_folder.is_not(None),
        sa.or_(
            studies.c.sheet_written_for.is_(None),
            studies.c.sheet_written_for < studies.c.last_received_at,
        ),
        sa.or_(
            studies.c.announced_for.is_(None),
            studies.c.announced_for != studies.c.last_received_at,
            studies.c.announced_at < now - timedelta(seconds=reannounce_after),
        ),
    )


async def _claim(
    connection: AsyncConnection, where: sa.ColumnElement[bool], now: datetime
) -> list[Claim]:
    rows = await connection.execute(
        sa.update(studies)
        .where(where)
        .values(announced_for=studies.c.last_received_at, announced_at=now)
        .returning(studies.c.study_instance_uid, studies.c.last_received_at)
    )
    return [Claim(uid, last, now) for uid, last in rows]


async def claim_quiet_studies(
    connection: AsyncConnection, *, stable_age: float, reannounce_after: float, now: datetime
) -> list[Claim]:
    """Claim the studies that received nothing for ``stable_age`` seconds and are due."""
    due = _due(now, reannounce_after)
    quiet = studies.c.last_received_at <= now - timedelta(seconds=stable_age)
    oldest = (
        sa.select(studies.c.id)
        .where(due, quiet)
        .order_by(studies.c.last_received_at)
        .limit(CLAIMS_PER_POLL)
        .scalar_subquery()
    )
    # The conditions are repeated outside the subquery: they are what a racing claim re-checks.
    return await _claim(connection, sa.and_(studies.c.id.in_(oldest), due, quiet), now)


async def claim_studies(
    connection: AsyncConnection,
    study_uids: Sequence[str],
    *,
    reannounce_after: float,
    now: datetime,
) -> list[Claim]:
    """Claim the given studies now, quiet or not (an MPPS step said they are complete)."""
    if not study_uids:
        return []
    where = sa.and_(studies.c.study_instance_uid.in_(list(study_uids)), _due(now, reannounce_after))
    return await _claim(connection, where, now)


async def release(connection: AsyncConnection, claim: Claim) -> None:
    """Give a claim back (its publish failed), unless another monitor has claimed since."""
    await connection.execute(
        sa.update(studies)
        .where(
            studies.c.study_instance_uid == claim.study_instance_uid,
            studies.c.announced_at == claim.announced_at,
        )
        .values(announced_for=None, announced_at=None)
    )


async def mark_sheet_written(
    connection: AsyncConnection, study_uid: str, written_for: datetime, now: datetime
) -> None:
    await connection.execute(
        sa.update(studies)
        .where(studies.c.study_instance_uid == study_uid)
        .values(sheet_written_for=written_for, sheet_written_at=now)
    )


async def sheet_is_current(connection: AsyncConnection, study_uid: str) -> bool:
    """True when the sheet on disk was made from the study as it stands (a redelivery)."""
    row = (
        await connection.execute(
            sa.select(studies.c.last_received_at, studies.c.sheet_written_for).where(
                studies.c.study_instance_uid == study_uid
            )
        )
    ).one_or_none()
    if row is None or row.sheet_written_for is None or row.last_received_at is None:
        return False
    return bool(row.sheet_written_for >= row.last_received_at)


async def study_ready(connection: AsyncConnection, study_uid: str) -> StudyReady | None:
    """The ``study.ready`` announcement of a study whose sheet is written; None otherwise."""
    row = (
        await connection.execute(
            sa.select(studies.c.account, studies.c.study_folder, studies.c.sheet_written_for).where(
                studies.c.study_instance_uid == study_uid
            )
        )
    ).one_or_none()
    if row is None or row.study_folder is None:
        return None
    return StudyReady(
        study_instance_uid=study_uid,
        account=row.account or "",
        folder=row.study_folder,
        sheet_for=row.sheet_written_for,
    )


async def indexed_instances(connection: AsyncConnection, sop_uids: Sequence[str]) -> dict[str, str]:
    """The given instances the index holds, each with its study's UID."""
    found: dict[str, str] = {}
    unique = sorted(set(sop_uids))
    for start in range(0, len(unique), 500):  # bounded IN lists for both databases
        chunk = unique[start : start + 500]
        rows = await connection.execute(
            sa.select(instances.c.sop_instance_uid, studies.c.study_instance_uid)
            .select_from(instances.join(series).join(studies))
            .where(instances.c.sop_instance_uid.in_(chunk))
        )
        found.update({sop: study for sop, study in rows})
    return found


def as_list(value: Any) -> list[str]:
    """A JSON list column's value (SQLite may give it back as text through some drivers)."""
    return [str(item) for item in value] if isinstance(value, list) else []
