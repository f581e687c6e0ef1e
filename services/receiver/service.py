"""The receiver service: the listener, the spool and the bus, started and stopped in order.

Start: clear partial transfers, re-publish what the spool holds that the bus may not, then
listen. Stop: stop accepting, let the associations in flight finish, then return (the caller
closes the bus after every service has stopped).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pynetdicom import ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.presentation import PresentationContext, build_context

from services.receiver import commitment, find, get, move, mpps, verification
from services.receiver.audit import AuditReporter
from services.receiver.commitment import Commitment, Journal
from services.receiver.find import Find
from services.receiver.get import Get
from services.receiver.intake import Intake
from services.receiver.listener import Listener
from services.receiver.move import Move
from services.receiver.mpps import Mpps
from services.receiver.operations import Handler
from services.receiver.settings import ReceiverSettings
from services.receiver.spool import Spool
from services.receiver.storage import Storage
from services.receiver.verification import Verification
from shared.audit.activity import process_identity
from shared.bus import Publisher, PublishError
from shared.db.reader import IndexReader
from shared.log import get_logger
from shared.messages import InstanceReceived, Message, MessageError, decode
from shared.quarantine import quarantine
from shared.settings import DataPaths, Destination

log = get_logger(__name__)


class Receiver:
    """One DICOM listener feeding the bus."""

    def __init__(
        self,
        settings: ReceiverSettings,
        paths: DataPaths,
        bus: Publisher,
        index: IndexReader | None = None,
        destinations: dict[str, Destination] | None = None,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._paths = paths
        self._index = index  # for queries and retrievals; None: neither
        self._destinations = destinations or {}
        self._spool = Spool(paths.spool)
        self._listener: Listener | None = None
        self._commitment: Commitment | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._reporter = AuditReporter(self._publish_confirmed)

    @property
    def ports(self) -> list[int]:
        return self._listener.ports if self._listener else []

    async def start(self) -> None:
        removed = self._spool.prepare()
        if removed:
            log.warning("spool.partial_transfers_removed", count=len(removed))
        await self.republish()
        settings = self._settings
        self._executor = ThreadPoolExecutor(settings.io_threads, "receiver-io")
        intake = Intake(
            self._spool,
            self._publish_confirmed,
            self._paths.quarantine,
            settings.min_free_disk_mb * 2**20,
            self._executor,
            settings.max_inflated_mb * 2**20,
        )
        # Each service by the abstract syntax it answers, with the transfer syntaxes it takes;
        # storage takes every other context (see services.receiver.negotiation).
        handlers: dict[str, tuple[Handler, PresentationContext]] = {
            verification.ABSTRACT_SYNTAX: (
                Verification(),
                build_context(verification.ABSTRACT_SYNTAX, ALL_TRANSFER_SYNTAXES),
            ),
            mpps.MPPS_SOP_CLASS: (
                Mpps(self._publish_confirmed),
                build_context(mpps.MPPS_SOP_CLASS, DEFAULT_TRANSFER_SYNTAXES),
            ),
        }
        if self._index is not None and settings.query.enabled:
            finder = Find(self._index, settings.ae_title, settings.query)
            for syntax in find.ABSTRACT_SYNTAXES:
                handlers[syntax] = (finder, build_context(syntax, find.TRANSFER_SYNTAXES))
            mover = Move(
                self._index,
                settings.ae_title,
                settings.query,
                self._paths.accounts,
                self._destinations,
            )
            for syntax in move.ABSTRACT_SYNTAXES:
                handlers[syntax] = (mover, build_context(syntax, find.TRANSFER_SYNTAXES))
            getter = Get(self._index, settings.ae_title, settings.query, self._paths.accounts)
            for syntax in get.ABSTRACT_SYNTAXES:
                handlers[syntax] = (getter, build_context(syntax, find.TRANSFER_SYNTAXES))
            self._commitment = Commitment(
                self._index,
                settings.ae_title,
                settings.commitment,
                Journal(self._paths.commitments),
                self._paths.accounts,
                self._destinations,
            )
            handlers[commitment.SOP_CLASS] = (
                self._commitment,
                build_context(commitment.SOP_CLASS, find.TRANSFER_SYNTAXES),
            )
        listener = Listener(settings, handlers, Storage(self._spool, intake), self._reporter)
        await listener.start()
        self._listener = listener
        if self._commitment is not None:
            self._commitment.resume()
        self._reporter.report("application_started", self._activity())

    def problem(self) -> str | None:
        return None if self._listener is not None else "not listening"

    def _activity(self) -> dict[str, object]:
        return {**process_identity(["receiver"]), "ae_title": self._settings.ae_title}

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop(self._settings.shutdown_grace)
            self._listener = None
            self._reporter.report("application_stopped", self._activity())
        await self._reporter.drain()
        if self._commitment is not None:
            await self._commitment.stop()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown)
            self._executor = None
        if self._index is not None:
            await self._index.close()

    async def republish(self) -> int:
        """Publish spooled instances the bus may not hold; return how many."""
        count = 0
        for path in self._spool.to_publish(bus_is_durable=self._bus.durable):
            message = self._recorded_message(path)
            if message is None:
                continue
            await self._bus.publish(message)
            self._spool.mark_published(path)
            count += 1
        if count:
            log.info("spool.republished", count=count, durable_bus=self._bus.durable)
        return count

    def _recorded_message(self, path: Path) -> InstanceReceived | None:
        record = self._spool.record(path)
        if record is not None:
            try:
                message = decode(InstanceReceived.kind, record)
            except MessageError as error:
                log.warning("spool.record_unreadable", spool_name=path.name, error=str(error))
            else:
                assert isinstance(message, InstanceReceived)
                return message
        try:
            meta = read_file_meta_info(path)
            return InstanceReceived(
                sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
                sop_class_uid=str(meta.MediaStorageSOPClassUID),
                transfer_syntax_uid=str(meta.TransferSyntaxUID),
                spool_name=path.name,
                size=path.stat().st_size,
                received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
                calling_ae="",
                called_ae=self._settings.ae_title,
                peer_address="",
                peer_port=0,
            )
        # The spool only holds files this receiver accepted; one that cannot be read now (disk
        # corruption, a file put there by hand) is set aside with its reason, not guessed at.
        except Exception as error:
            quarantine(
                path,
                self._paths.quarantine,
                f"spooled file unreadable at start-up: {type(error).__name__}: {error}",
            )
            return None

    async def _publish_confirmed(self, message: Message) -> None:
        """Publish and wait for the confirm, at most ``receiver.publish_timeout``."""
        try:
            async with asyncio.timeout(self._settings.publish_timeout):
                await self._bus.publish(message)
        except TimeoutError:
            raise PublishError(
                f"no confirm within receiver.publish_timeout ({self._settings.publish_timeout}s)"
            ) from None
