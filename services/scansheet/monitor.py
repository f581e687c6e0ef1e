"""The study monitor: announces ``study.complete`` for quiet studies and completed MPPS steps.

Every ``poll_interval`` it claims the studies that have been quiet for ``stable_age`` (see
:mod:`services.scansheet.completion`) and the studies of COMPLETED steps whose instances are
all indexed, then publishes one ``study.complete`` per claim. A publish that fails gives its
claim back, so the next poll tries again. Any number of monitors may run: each claim is won
by exactly one. The state is in the index, so a restart resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scansheet.completion import (
    Claim,
    claim_quiet_studies,
    claim_studies,
    indexed_instances,
    release,
)
from services.scansheet.settings import ScanSheetSettings
from services.scansheet.steps import Step, completed_steps_pending, mark_step_done
from shared.bus import Bus, PublishError
from shared.db.schema import mpps_steps, studies
from shared.log import get_logger
from shared.messages import StudyComplete
from shared.tasks import cancel_and_wait

log = get_logger(__name__)

# A poll that fails (the database restarting) is logged and tried again at the next one.
_POLL_FAILURES = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DBAPIError, OSError)


class StudyMonitor:
    """Polls the index and announces completed studies on the bus."""

    def __init__(self, settings: ScanSheetSettings, engine: AsyncEngine, bus: Bus) -> None:
        self._settings = settings
        self._engine = engine
        self._bus = bus
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="study-monitor")

    def problem(self) -> str | None:
        if self._task is None or self._task.done():
            return "the study monitor is not running"
        return None

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except _POLL_FAILURES as error:
                log.warning("monitor.poll_failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(self._settings.poll_interval)

    async def poll(self) -> int:
        """One look at the index; the number of studies announced."""
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            claims = await claim_quiet_studies(
                connection,
                stable_age=self._settings.stable_age,
                reannounce_after=self._settings.reannounce_after,
                now=now,
            )
        announced = await self._announce(claims, "stable")
        async with self._engine.connect() as connection:
            steps = await completed_steps_pending(connection)
        for step in steps:
            announced += await self.complete_step(step)
        return announced

    async def complete_step(self, step: Step) -> int:
        """Complete a COMPLETED step's studies once all it references is indexed."""
        if step.status != "COMPLETED":
            return 0
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            found = await indexed_instances(connection, step.referenced_sop_instance_uids)
            if len(found) < len(set(step.referenced_sop_instance_uids)):
                return 0  # instances still on their way: the next poll looks again
            study_uids = sorted(set(step.study_instance_uids) | set(found.values()))
            known = await connection.scalar(
                sa.select(sa.func.count()).where(studies.c.study_instance_uid.in_(study_uids))
            )
            if not known:
                return 0  # nothing of the step's studies indexed yet
            claims = await claim_studies(
                connection, study_uids, reannounce_after=self._settings.reannounce_after, now=now
            )
            await mark_step_done(connection, step.step_uid, now)
        log.info("monitor.mpps_completed", step_uid=step.step_uid, studies=study_uids)
        announced = await self._announce(claims, "mpps")
        if announced < len(claims):
            async with self._engine.begin() as connection:
                # Let the next poll try the step again, since its publish failed.
                await connection.execute(
                    sa.update(mpps_steps)
                    .where(mpps_steps.c.step_uid == step.step_uid)
                    .values(announced_at=None)
                )
        return announced

    async def _announce(self, claims: list[Claim], reason: str) -> int:
        announced = 0
        for claim in claims:
            message = StudyComplete(
                study_instance_uid=claim.study_instance_uid,
                reason="mpps" if reason == "mpps" else "stable",
                last_received_at=claim.last_received_at,
            )
            try:
                await self._bus.publish(message)
            except PublishError as error:
                log.warning(
                    "monitor.publish_failed",
                    study_instance_uid=claim.study_instance_uid,
                    error=str(error),
                )
                async with self._engine.begin() as connection:
                    await release(connection, claim)
                continue
            announced += 1
            log.info(
                "monitor.announced",
                study_instance_uid=claim.study_instance_uid,
                reason=reason,
                last_received_at=claim.last_received_at.isoformat(),
            )
        return announced
