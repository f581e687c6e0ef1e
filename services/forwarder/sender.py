"""The forwarder's sender: due jobs claimed from the index, sent with the toolkit's ``send``
(one association per destination and batch), each job settled by what the destination said.

A destination that cannot be reached leaves every job of the batch pending, tried again after
a backoff that doubles up to ``forwarder.retry_backoff_max``; an instance it refuses (a
failure status), or whose file cannot be read, counts a refusal, and ``max_refusals`` of those
fail it with the reason.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.forwarder.jobs import DONE, FAILED, PENDING, Job, Outcome, claim, settle
from services.forwarder.settings import ForwarderSettings
from shared.dicom.net import NetError, SendResult, send_to
from shared.log import get_logger
from shared.settings import Destination

log = get_logger(__name__)


class Sender:
    def __init__(
        self,
        settings: ForwarderSettings,
        accounts_root: Path,
        engine: AsyncEngine,
        destinations: dict[str, Destination],
        ae_title: str,
    ) -> None:
        self._settings = settings
        self._accounts_root = accounts_root
        self._engine = engine
        self._destinations = destinations
        self._ae_title = ae_title
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                jobs = await claim(self._engine, self._settings.batch_size, self._settings.lease)
            except (OSError, sa.exc.SQLAlchemyError) as error:
                log.warning("forward.database_unavailable", error=str(error))
                jobs = []
            if not jobs:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self._settings.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            outcomes: list[Outcome] = []
            by_destination: dict[str, list[Job]] = {}
            for job in jobs:
                by_destination.setdefault(job.destination, []).append(job)
            for destination, batch in by_destination.items():
                outcomes += await self._send(destination, batch)
            try:
                await settle(self._engine, outcomes, self._ae_title, self._addresses())
            except (OSError, sa.exc.SQLAlchemyError) as error:
                # Claimed, not settled: the lease runs out and they are sent again.
                log.error("forward.unsettled", jobs=len(outcomes), error=str(error))

    def _addresses(self) -> dict[str, str]:
        return {name: f"{d.host}:{d.port}" for name, d in self._destinations.items()}

    async def _send(self, name: str, batch: list[Job]) -> list[Outcome]:
        destination = self._destinations.get(name.upper())
        if destination is None:
            reason = f"no [destinations.{name}]"
            return [self._refused(job, reason) for job in batch]
        by_path = {self._accounts_root / job.path: job for job in batch}
        try:
            summary = await asyncio.to_thread(
                send_to, name, destination, list(by_path), calling_aet=self._ae_title
            )
            results = summary.results
        except NetError as error:  # the host name does not resolve
            results = [SendResult(path, "failed", str(error)) for path in by_path]
        peer = f"{name}@{destination.host}:{destination.port}"
        outcomes = [self._outcome(by_path[r.path], r, peer) for r in results]
        sent = sum(o.state == DONE for o in outcomes)
        waiting = [o for o in outcomes if o.state == PENDING]
        log.info(
            "forward.batch",
            destination=name,
            sent=sent,
            retry=len(waiting),
            failed=sum(o.state == FAILED for o in outcomes),
            reason=waiting[0].reason if waiting else None,
        )
        return outcomes

    def _outcome(self, job: Job, result: SendResult, peer: str) -> Outcome:
        if result.outcome == "sent":
            return Outcome(job, DONE)
        if result.status is None and result.reason.startswith(peer):
            # The destination could not be reached, or the association failed: not the
            # instance's fault. It waits, however long, with a backoff.
            backoff = min(
                self._settings.retry_backoff * 2 ** min(job.attempts, 20),
                self._settings.retry_backoff_max,
            )
            retry_at = datetime.now(UTC) + timedelta(seconds=backoff)
            return Outcome(job, PENDING, result.reason, retry_at)
        return self._refused(job, result.reason)

    def _refused(self, job: Job, reason: str) -> Outcome:
        if job.refusals + 1 >= self._settings.max_refusals:
            log.error("forward.failed", sop_instance_uid=job.sop_instance_uid, reason=reason)
            return Outcome(job, FAILED, reason, refused=True)
        retry_at = datetime.now(UTC) + timedelta(seconds=self._settings.retry_backoff)
        return Outcome(job, PENDING, reason, retry_at, refused=True)
