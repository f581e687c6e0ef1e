"""The router service: consume ``instance.received``, file each instance, publish
``instance.filed``; and audit the receiver's ``instance.refused``. Run as many as needed; they
agree through the database's claims."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from services.router.accounts import seed_accounts
from services.router.filing import Filing
from services.router.refusals import record_refusal
from shared.bus import Bus, Delivery, Subscription
from shared.db.patience import patiently
from shared.log import get_logger
from shared.messages import InstanceRefused
from shared.settings import Settings

log = get_logger("services.router")

ROLE = "router"
# On the in-process bus, what the receiver published before it stopped is filed first.
DRAIN_SECONDS = 30.0


class Router:
    def __init__(self, settings: Settings, engine: AsyncEngine, bus: Bus) -> None:
        self._settings = settings
        self._engine = engine
        self._bus = bus
        self._filing = Filing(settings, engine, bus)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._settings.accounts_dir.mkdir(parents=True, exist_ok=True)
        if self._settings.accounts:
            async with self._engine.begin() as connection:
                created = await seed_accounts(connection, self._settings.accounts)
            if created:
                log.info("accounts.seeded", created=created)
        self._subscription = await self._bus.consume(
            ROLE, self._handle, prefetch=self._settings.router.prefetch
        )
        log.info("router.started", prefetch=self._settings.router.prefetch)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        log.info("router.stopped")

    async def _handle(self, delivery: Delivery) -> None:
        # Filing is idempotent (see filing.py), so after an outage it simply runs again.
        message = delivery.message
        if isinstance(message, InstanceRefused):
            work = partial(record_refusal, self._engine, message)
        else:
            work = partial(self._filing.handle, delivery)
        await patiently("filing", work, self._settings.router.database_retry_seconds)
