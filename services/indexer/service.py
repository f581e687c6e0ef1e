"""The indexer service: catch up from the audit trail, then index ``instance.filed`` batches.

Start: reconcile (see :mod:`services.indexer.reconcile`), then consume the ``indexer`` queue
in batches of ``indexer.batch_size`` or ``indexer.max_wait_ms``. Stop: on the in-process bus,
first work through what is queued (the router has stopped by then, so the queue only
shrinks), for at most ``DRAIN_SECONDS``; then stop consuming, letting the batch in hand finish.
What a stop leaves queued on the in-process bus is caught up by the next start-up.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from services.indexer.consumer import Indexing
from services.indexer.reconcile import Reconciled, reconcile
from shared.bus import Bus
from shared.bus.memory import MemoryBus
from shared.log import get_logger
from shared.settings import Settings

log = get_logger(__name__)

ROLE = "indexer"
DRAIN_SECONDS = 30.0


class Indexer:
    """One indexer worker on a bus and an index database."""

    def __init__(self, settings: Settings, bus: Bus, engine: AsyncEngine) -> None:
        self._settings = settings
        self._bus = bus
        self._engine = engine
        self.indexing = Indexing(settings, engine)
        self.reconciled: Reconciled | None = None

    async def start(self) -> None:
        options = self._settings.indexer
        self.reconciled = await reconcile(
            self._engine, self.indexing, options.reconcile_page, options.batch_size
        )
        await self._bus.consume_batch(
            ROLE,
            self.indexing.handle,
            max_batch=options.batch_size,
            max_wait=options.max_wait_ms / 1000,
            prefetch=options.prefetch,
        )
        log.info(
            "indexer.started",
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            prefetch=options.prefetch,
        )

    async def stop(self) -> None:
        if isinstance(self._bus, MemoryBus):
            await self._drain(self._bus)
        await self._bus.stop_consuming()
        log.info("indexer.stopped")

    async def _drain(self, bus: MemoryBus) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while bus.waiting(ROLE):
            if loop.time() > deadline:
                log.warning("indexer.drain_timeout", waiting=len(bus.waiting(ROLE)))
                return
            await asyncio.sleep(0.05)
