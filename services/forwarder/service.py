"""The forwarder service: rules met by filed instances and completed studies become jobs in
the index; a sender sends due jobs to their destinations, one association per batch; and
once a study's sheet is written, the hooks run (:mod:`services.forwarder.hooks`).

Messages are acked once their jobs are recorded, so a destination down for hours holds no
delivery: its jobs wait in the index, tried again with a growing backoff (``pending``, with
their next attempt), and an instance the destination refuses ``forwarder.max_refusals`` times
is ``failed`` with the reason, for ``store-server forwards`` to show and ``--retry`` to send
again. On the in-process bus a stop first works through what is queued.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.forwarder.hooks import run_hooks
from services.forwarder.jobs import NewJob, record
from services.forwarder.rules import Facts, met
from services.forwarder.sender import Sender
from services.forwarder.settings import ForwarderSettings, ForwardRule
from shared.bus import BatchRoutes, Bus, Delivery, Retry, Subscription
from shared.db.schema import instances, series, studies
from shared.dicom.header import HeaderReadError, read_header
from shared.dicom.json_model import keyword_values
from shared.dicom.values import as_text
from shared.log import get_logger
from shared.messages import InstanceFiled, StudyComplete, StudyReady
from shared.settings import DataPaths, Destination
from shared.tasks import cancel_and_wait

log = get_logger(__name__)

ROLE = "forwarder"
DRAIN_SECONDS = 30.0


class Forwarder:
    """One forwarder worker: its consumer and its sender."""

    def __init__(
        self,
        settings: ForwarderSettings,
        paths: DataPaths,
        bus: Bus,
        engine: AsyncEngine,
        destinations: dict[str, Destination],
        ae_title: str,
    ) -> None:
        self._settings = settings
        self._paths = paths
        self._bus = bus
        self._engine = engine
        self._sender = Sender(settings, paths.accounts, engine, destinations, ae_title)
        self._subscription: Subscription | None = None
        self._sending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        options = self._settings
        routes = (
            BatchRoutes(ROLE)
            .on(InstanceFiled, self._filed)
            .on(StudyComplete, self._complete)
            .on(StudyReady, self._ready)
        )
        self._subscription = await self._bus.consume_batch(
            ROLE,
            routes,
            max_batch=options.batch_size,
            max_wait=options.max_wait_ms / 1000,
            prefetch=options.prefetch,
        )
        self._sending = asyncio.create_task(self._sender.run(), name="forwarder-sender")
        log.info("forwarder.started", rules=[rule.name for rule in options.rules])

    def problem(self) -> str | None:
        if self._subscription is None:
            return "not consuming"
        if self._sending is None or self._sending.done():
            return "not sending"
        return None

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        if self._sending is not None:
            await cancel_and_wait(self._sending)  # a batch cut short is claimed again later
            self._sending = None
        log.info("forwarder.stopped")

    async def _filed(self, deliveries: list[Delivery[InstanceFiled]]) -> None:
        rules = [rule for rule in self._settings.rules if rule.when == "instance"]
        jobs: list[NewJob] = []
        for delivery in deliveries if rules else []:
            message = delivery.message
            facts = await asyncio.to_thread(self._instance_facts, message, rules)
            jobs += [
                NewJob(
                    rule.name,
                    rule.destination,
                    message.sop_instance_uid,
                    message.study_instance_uid,
                    message.path,
                )
                for rule in rules
                if met(rule, facts)
            ]
        await self._record(jobs)

    def _instance_facts(self, message: InstanceFiled, rules: list[ForwardRule]) -> Facts:
        header = None
        if any(rule.needs_header for rule in rules):
            try:
                header = read_header(self._paths.accounts / message.path)
            except (OSError, HeaderReadError) as error:
                log.warning("forward.header_unreadable", path=message.path, error=str(error))

        def values(keyword: str) -> list[str]:
            if header is None or keyword not in header:
                return []
            return [v for v in as_text(header.get(keyword)).split("\\") if v]

        modality = values("Modality")
        return Facts(message.account, frozenset({message.calling_ae}), frozenset(modality), values)

    async def _complete(self, deliveries: list[Delivery[StudyComplete]]) -> None:
        rules = [rule for rule in self._settings.rules if rule.when == "study"]
        jobs: list[NewJob] = []
        for delivery in deliveries if rules else []:
            uid = delivery.message.study_instance_uid
            try:
                found = await self._study(uid)
            except (OSError, sa.exc.SQLAlchemyError) as error:
                raise Retry(f"database unavailable: {error}") from error
            if found is None:
                log.warning("forward.study_not_indexed", study_instance_uid=uid)
                continue
            facts, members = found
            for rule in rules:
                if met(rule, facts):
                    jobs += [
                        NewJob(rule.name, rule.destination, sop, uid, path) for sop, path in members
                    ]
        await self._record(jobs)

    async def _study(self, uid: str) -> tuple[Facts, list[tuple[str, str]]] | None:
        """The study's facts and its instances (SOP Instance UID, path), from the index; the
        header of its first instance is read only when a rule looks at tags."""
        async with self._engine.connect() as connection:
            study = (
                await connection.execute(
                    sa.select(studies.c.id, studies.c.account, studies.c.modalities).where(
                        studies.c.study_instance_uid == uid
                    )
                )
            ).first()
            if study is None:
                return None
            members = (
                sa.select(instances.c.id, instances.c.sop_instance_uid, instances.c.path)
                .add_columns(instances.c.calling_ae)
                .join(series, instances.c.series_fk == series.c.id)
                .where(series.c.study_fk == study.id)
                .order_by(instances.c.id)
            )
            rows = list(await connection.execute(members))
            header: dict[str, Any] = {}
            if rows and any(rule.tags for rule in self._settings.rules if rule.when == "study"):
                first = sa.select(instances.c.header).where(instances.c.id == rows[0].id)
                found = await connection.scalar(first)
                header = found if isinstance(found, dict) else {}
        facts = Facts(
            str(study.account or ""),
            frozenset(str(row.calling_ae or "") for row in rows),
            frozenset(m for m in str(study.modalities or "").split("\\") if m),
            lambda keyword: keyword_values(header, keyword),
        )
        return facts, [(str(row.sop_instance_uid), str(row.path)) for row in rows]

    async def _ready(self, deliveries: list[Delivery[StudyReady]]) -> None:
        for delivery in deliveries:
            try:
                await run_hooks(
                    self._settings.hooks, delivery.message, self._engine, self._paths.accounts
                )
            except (OSError, sa.exc.SQLAlchemyError) as error:
                raise Retry(f"database unavailable: {error}") from error

    async def _record(self, jobs: list[NewJob]) -> None:
        if not jobs:
            return
        try:
            await record(self._engine, jobs)
        except (OSError, sa.exc.SQLAlchemyError) as error:
            raise Retry(f"database unavailable: {error}") from error
        log.info("forward.queued", jobs=len(jobs))
        self._sender.wake()
