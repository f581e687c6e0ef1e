"""The router service: consume ``instance.received``, file each instance, publish
``instance.filed``; and audit the receiver's ``instance.refused`` and ``audit.reported``. Run
as many as needed; they agree through the database's claims."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from services.router.accounts import seed_accounts
from services.router.filing import Filing
from services.router.refusals import record_refusals, record_reports
from services.router.settings import AccountSeed, RouterSettings
from shared.bus import BatchRoutes, Bus, Delivery, Subscription
from shared.consumers import riding_out_outages
from shared.log import get_logger
from shared.messages import AuditReported, InstanceReceived, InstanceRefused
from shared.settings import DataPaths

log = get_logger("services.router")

ROLE = "router"
AUDIT_QUEUE = "audit"  # the receiver's audit events, which the routers record
# On the in-process bus, what the receiver published before it stopped is filed first.
DRAIN_SECONDS = 30.0


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        paths: DataPaths,
        engine: AsyncEngine,
        bus: Bus,
        seeds: list[AccountSeed],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._bus = bus
        self._paths = paths
        self._seeds = seeds
        self._filing = Filing(settings, paths, engine, bus)
        self._subscription: Subscription | None = None
        self._reports: Subscription | None = None

    async def start(self) -> None:
        self._paths.accounts.mkdir(parents=True, exist_ok=True)
        if self._seeds:
            async with self._engine.begin() as connection:
                created = await seed_accounts(connection, self._seeds)
            if created:
                log.info("accounts.seeded", created=created)
        options = self._settings
        routes = BatchRoutes(ROLE).on(InstanceReceived, self._file).on(InstanceRefused, self._audit)
        self._subscription = await self._bus.consume_batch(
            ROLE,
            routes,
            max_batch=options.batch_size,
            max_wait=options.max_wait_ms / 1000,
            prefetch=options.prefetch,
        )
        self._reports = await self._bus.consume_batch(
            AUDIT_QUEUE,
            BatchRoutes(AUDIT_QUEUE).on(AuditReported, self._record),
            max_batch=options.batch_size,
            max_wait=options.max_wait_ms / 1000,
            prefetch=options.prefetch,
        )
        log.info(
            "router.started",
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            prefetch=options.prefetch,
        )

    def problem(self) -> str | None:
        return None if self._subscription is not None else "not consuming"

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        if self._reports is not None:
            await self._reports.stop(drain=DRAIN_SECONDS)
            self._reports = None
        log.info("router.stopped")

    async def _file(self, deliveries: list[Delivery[InstanceReceived]]) -> None:
        # Filing is idempotent (see filing.py), so after an outage it simply runs again.
        work = partial(self._filing.handle, deliveries)
        await riding_out_outages("filing", work, self._settings.database_retry_seconds)

    async def _audit(self, deliveries: list[Delivery[InstanceRefused]]) -> None:
        refusals = [delivery.message for delivery in deliveries]
        work = partial(record_refusals, self._engine, refusals)
        await riding_out_outages("refusal", work, self._settings.database_retry_seconds)

    async def _record(self, deliveries: list[Delivery[AuditReported]]) -> None:
        reports = [delivery.message for delivery in deliveries]
        work = partial(record_reports, self._engine, reports)
        await riding_out_outages("audit report", work, self._settings.database_retry_seconds)
