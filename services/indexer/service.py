"""The indexer service: index ``instance.filed`` batches, and catch up from the audit trail.

Start: consume the ``indexer`` queue in batches of ``indexer.batch_size`` or
``indexer.max_wait_ms``, and catch up in the background (see :mod:`services.indexer.reconcile`):
neither a large archive nor an instance that cannot be indexed holds a start-up back. Stop: on
the in-process bus, first work through what is queued (the router has stopped by then, so the
queue only shrinks), for at most ``DRAIN_SECONDS``; then stop consuming, letting the batch in
hand finish. What a stop leaves queued on the in-process bus is caught up at the next start.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from services.indexer.consumer import Indexing
from services.indexer.reconcile import Reconciled, reconcile
from services.indexer.settings import IndexerSettings
from shared.bus import BatchRoutes, Bus, Retry, Subscription
from shared.log import get_logger
from shared.messages import InstanceFiled
from shared.settings import DataPaths
from shared.tasks import cancel_and_wait

log = get_logger(__name__)

ROLE = "indexer"
DRAIN_SECONDS = 30.0


class Indexer:
    """One indexer worker on a bus and an index database."""

    def __init__(
        self, settings: IndexerSettings, paths: DataPaths, bus: Bus, engine: AsyncEngine
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._engine = engine
        self.indexing = Indexing(settings, paths, engine)
        self._subscription: Subscription | None = None
        self._catch_up: asyncio.Task[Reconciled | None] | None = None

    async def start(self) -> None:
        options = self._settings
        self._subscription = await self._bus.consume_batch(
            ROLE,
            BatchRoutes(ROLE).on(InstanceFiled, self.indexing.handle),
            max_batch=options.batch_size,
            max_wait=options.max_wait_ms / 1000,
            prefetch=options.prefetch,
        )
        self._catch_up = asyncio.create_task(self._reconcile(), name="indexer-catch-up")
        log.info(
            "indexer.started",
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            prefetch=options.prefetch,
        )

    async def caught_up(self) -> Reconciled | None:
        """The start-up catch-up's counts once it is over (None if it could not finish)."""
        assert self._catch_up is not None, "start() first"
        return await asyncio.shield(self._catch_up)

    async def _reconcile(self) -> Reconciled | None:
        options = self._settings
        try:
            return await reconcile(
                self._engine, self.indexing, options.reconcile_page, options.batch_size
            )
        except Retry as error:  # the database stayed away longer than its bound
            log.error("index.reconcile_stopped", error=str(error))
            return None

    def problem(self) -> str | None:
        return None if self._subscription is not None else "not consuming"

    async def stop(self) -> None:
        if self._catch_up is not None and not self._catch_up.done():
            # Unfinished catch-up is simply done again at the next start.
            await cancel_and_wait(self._catch_up)
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        log.info("indexer.stopped")
