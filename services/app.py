"""Run services in one process: the embedded server (`run`) and the single-service commands.

Connections are made here, inside the running loop, and passed to each service. Services
start consumers first and the receiver last, and stop in the reverse order on SIGTERM or
SIGINT: the receiver stops accepting and finishes the stores in flight, then each consumer
finishes its deliveries (on the in-process bus, it first works through what is queued for it),
then the bus and the database are closed.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from services.forwarder import Forwarder
from services.indexer import Indexer
from services.receiver import Receiver
from services.router import Router
from services.scansheet import ScanSheets, WrittenSheet, write_sheet_now
from services.settings import Settings
from shared.audit.activity import record_activity
from shared.audit.collector import syslog_copy
from shared.audit.shipping import AuditShipper, Copy, JsonLines
from shared.bus import Bus, open_bus
from shared.db.audit import Action
from shared.db.engine import open_index
from shared.db.reader import IndexReader
from shared.heartbeat import Heartbeat, beat_path
from shared.log import configure_logging, get_logger
from shared.privacy import private_umask, tighten
from shared.process import DataDirectoryLock, StartError

log = get_logger(__name__)


class Service(Protocol):
    """A started service: stopped once, in the reverse order of starting."""

    def problem(self) -> str | None:
        """Why it is not working now (not consuming, not listening), or None."""
        ...

    async def stop(self) -> None: ...


@dataclass
class Running:
    """What a started process holds, for the services and for an orderly stop."""

    settings: Settings
    bus: Bus
    engine: AsyncEngine | None = None
    lock: DataDirectoryLock | None = None
    services: dict[str, Service] = field(default_factory=dict)
    heartbeat: Heartbeat | None = None

    @property
    def index(self) -> AsyncEngine:
        assert self.engine is not None, "this role needs the index database"
        return self.engine

    @property
    def receiver(self) -> Receiver | None:
        receiver = self.services.get("receiver")
        return receiver if isinstance(receiver, Receiver) else None

    def problem(self) -> str | None:
        """Why this process is not working now, for its heartbeat; None when it is."""
        trouble = self.bus.problem()
        for role, service in self.services.items():
            trouble = trouble or (f"{role}: {found}" if (found := service.problem()) else None)
        return trouble

    @property
    def recorded_roles(self) -> list[str]:
        """The roles whose start and stop this process records in the index itself: all but
        the receiver, which reports its own."""
        return [role for role in self.services if role in STARTERS and role != "receiver"]

    async def stop(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        if self.engine is not None and self.recorded_roles:
            await record_activity(self.engine, Action.APPLICATION_STOPPED, self.recorded_roles)
        for role in reversed(list(self.services)):
            await self.services.pop(role).stop()
        await self.bus.close()
        if self.engine is not None:
            await self.engine.dispose()
        if self.lock is not None:
            self.lock.release()
        log.info("process.stopped")


async def _start_indexer(running: Running) -> Service:
    settings = running.settings
    indexer = Indexer(settings.indexer, settings.paths, running.bus, running.index)
    await indexer.start()
    return indexer


async def _start_receiver(running: Running) -> Service:
    settings = running.settings
    receiver = Receiver(
        settings.receiver,
        settings.paths,
        running.bus,
        IndexReader(settings.query_database_url),
        settings.destinations,
    )
    await receiver.start()
    return receiver


async def _start_router(running: Running) -> Service:
    settings = running.settings
    router = Router(settings.router, settings.paths, running.index, running.bus, settings.accounts)
    await router.start()
    return router


async def _start_forwarder(running: Running) -> Service:
    settings = running.settings
    forwarder = Forwarder(
        settings.forwarder,
        settings.paths,
        running.bus,
        running.index,
        settings.destinations,
        settings.receiver.ae_title,
    )
    await forwarder.start()
    return forwarder


async def _start_scansheet(running: Running) -> Service:
    settings = running.settings
    scansheets = ScanSheets(
        settings.scansheet,
        settings.paths,
        running.bus,
        running.index,
        settings.router.file_mode,  # the sheet lies beside the filed images, made alike
    )
    await scansheets.start()
    return scansheets


async def _start_audit_copies(running: Running) -> Service:
    """The audit trail's copies (the audit log, a syslog collector), shipped by the process
    that indexes."""
    settings = running.settings
    audit = settings.audit
    copies: list[Copy] = [JsonLines(settings.audit_log_file)]
    try:
        collector = syslog_copy(
            audit.syslog, audit.source_id or settings.receiver.ae_title, audit.site
        )
    except (OSError, ssl.SSLError) as error:
        raise StartError(f"audit.syslog: {error}") from None
    if collector is not None:
        copies.append(collector)
    shipper = AuditShipper(running.index, copies, settings.audit_log_file, audit.poll_interval)
    await shipper.start()
    return shipper


Starter = Callable[[Running], Awaitable[Service]]

# In start order: the receiver last, so that it stops first. The scan-sheet service starts
# first and so stops last, after the router and indexer have filed and indexed what they had;
# the forwarder stops after the router, so that it takes up what the router filed.
STARTERS: dict[str, Starter] = {
    "scansheet": _start_scansheet,
    "indexer": _start_indexer,
    "forwarder": _start_forwarder,
    "router": _start_router,
    "receiver": _start_receiver,
}
EMBEDDED = tuple(STARTERS)
NEEDS_INDEX = frozenset(STARTERS) - {"receiver"}


def process_role(roles: Collection[str]) -> str:
    """The role a process runs as, for its heartbeat and its health check: ``run`` for the
    embedded server, else the role it was started as."""
    return "run" if set(roles) == set(EMBEDDED) else "+".join(sorted(roles))


def claim_data_dir(settings: Settings, roles: Collection[str]) -> DataDirectoryLock | None:
    """The data directory's lock, for a process that receives (it owns the spool); raises
    :class:`StartError` when another process holds it."""
    if "receiver" not in roles:
        return None  # routers, indexers and scan-sheet workers share a data directory
    lock = DataDirectoryLock(settings.data_dir)
    lock.acquire()
    return lock


async def start(
    settings: Settings,
    roles: Collection[str],
    *,
    index: bool = False,
    lock: DataDirectoryLock | None = None,
    heartbeat: bool = True,
) -> Running:
    """Claim the data directory (for a receiver), connect the bus (and the index when a role
    needs it, or ``index``), start ``roles``; beat a heartbeat unless another process of the
    same server does (``heartbeat``)."""
    unknown = set(roles) - set(STARTERS)
    if unknown:
        raise ValueError(f"unknown service roles: {sorted(unknown)}")
    lock = lock or claim_data_dir(settings, roles)
    try:
        for directory in (settings.data_dir, settings.spool_dir, settings.quarantine_dir):
            directory.mkdir(parents=True, exist_ok=True)
        bus = open_bus(settings.bus)
        await bus.start()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    running = Running(settings=settings, bus=bus, lock=lock)
    try:
        if index or NEEDS_INDEX & set(roles):
            running.engine = await open_index(
                settings.database_url, settings.database.connect_timeout
            )
        if "indexer" in roles:  # first, so that it stops last, with the last events
            running.services["audit"] = await _start_audit_copies(running)
        for role, starter in STARTERS.items():
            if role in roles:
                running.services[role] = await starter(running)
        if running.engine is not None and running.recorded_roles:
            await record_activity(
                running.engine, Action.APPLICATION_STARTED, running.recorded_roles
            )
        if heartbeat:
            path = beat_path(settings.data_dir, process_role(roles), settings.instance)
            running.heartbeat = Heartbeat(path, running.problem)
            await running.heartbeat.start()
    except BaseException:
        await running.stop()
        raise
    return running


async def serve(settings: Settings, roles: Collection[str], *, index: bool = False) -> int:
    """Claim the data directory, log, start, run until SIGTERM or SIGINT, stop in order; the
    process exit code. A data directory in use raises :class:`StartError` before any file is
    touched, the log included."""
    private_umask()  # before anything is created: the lock, the log, the index
    lock = claim_data_dir(settings, roles)
    configure_logging(settings.log_file, settings.log.level, accounts_root=settings.accounts_dir)
    tighten(settings.data_dir, settings.log_file)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        running = await start(settings, roles, index=index, lock=lock)
    except (ConnectionError, StartError) as error:
        log.error("process.start_failed", error=str(error))
        return 1
    log.info(
        "process.started",
        roles=sorted(roles),
        bus=redact(settings.bus.url),
        data_dir=str(settings.data_dir),
    )
    await stopping.wait()
    log.info("process.stopping")
    await running.stop()
    return 0


async def write_sheet(settings: Settings, engine: AsyncEngine, study_uid: str) -> WrittenSheet:
    """One study's scan sheet, now, as the scan-sheet service writes it (for the commands)."""
    return await write_sheet_now(
        settings.scansheet, settings.paths, engine, settings.router.file_mode, study_uid
    )


def storage(settings: Settings) -> int:
    """Run the store server on ``settings`` until SIGTERM or SIGINT; return the exit code.

    What ``store-server run`` does: the receiver and the services behind it, on the backends
    the settings name, logging to the data directory and stdout; on the in-process bus, the
    services behind the receiver run in a second process (:mod:`services.embedded`). From a
    script, call it under ``if __name__ == "__main__":``, as for any program that starts
    worker processes: scan-sheet thumbnails are made in spawned workers, which import the
    script's main module.
    """
    # Imported here: services.embedded builds on this module.
    from services.embedded import serve_split, split

    if split(settings):
        return asyncio.run(serve_split(settings))
    return asyncio.run(serve(settings, EMBEDDED, index=True))


def redact(url: str) -> str:
    """A URL without its credentials, for logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
