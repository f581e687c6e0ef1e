"""Run services in one process: the embedded server (`run`) and the single-service commands.

Connections are made here, inside the running loop, and passed to each service. SIGTERM and
SIGINT stop the services in order: the receiver stops accepting and finishes the stores in
flight, consumers finish their deliveries, then the bus and the database are closed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from services.receiver.service import Receiver
from shared.bus import Bus, open_bus
from shared.db.engine import open_index
from shared.log import get_logger
from shared.settings import Settings

log = get_logger(__name__)


@dataclass
class Running:
    """What a started process holds, for the services and for an orderly stop."""

    settings: Settings
    bus: Bus
    engine: AsyncEngine | None = None
    receiver: Receiver | None = None
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self) -> None:
        for stop in reversed(self.stoppers):
            await stop()
        await self.bus.close()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("process.stopped")


async def start(settings: Settings, *, receiver: bool, index: bool) -> Running:
    """Connect the bus (and the index when ``index``), then start the asked-for services."""
    for directory in (settings.data_dir, settings.spool_dir, settings.quarantine_dir):
        directory.mkdir(parents=True, exist_ok=True)
    bus = open_bus(settings.bus)
    await bus.start()
    running = Running(settings=settings, bus=bus)
    try:
        if index:
            running.engine = await open_index(
                settings.database_url, settings.database.connect_timeout
            )
        if receiver:
            running.receiver = Receiver(settings, bus)
            await running.receiver.start()
            running.stoppers.append(running.receiver.stop)
    except BaseException:
        await running.stop()
        raise
    return running


async def serve(settings: Settings, *, receiver: bool, index: bool) -> int:
    """Start, run until SIGTERM or SIGINT, stop in order; the process exit code."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        running = await start(settings, receiver=receiver, index=index)
    except ConnectionError as error:
        log.error("process.start_failed", error=str(error))
        return 1
    log.info("process.started", bus=redact(settings.bus.url), data_dir=str(settings.data_dir))
    await stopping.wait()
    log.info("process.stopping")
    await running.stop()
    return 0


def redact(url: str) -> str:
    """A URL without its credentials, for logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
