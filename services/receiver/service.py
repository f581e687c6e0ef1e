"""The receiver service: the listener, the spool and the bus, started and stopped in order.

Start: clear partial transfers, re-publish what the spool holds that the bus may not, then
listen. Stop: stop accepting, let the associations in flight finish, then return (the caller
closes the bus after every service has stopped).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import UTC, datetime
from pathlib import Path

from pydicom.filereader import read_file_meta_info

from services.receiver.intake import Intake
from services.receiver.scp import Listener
from services.receiver.settings import ReceiverSettings
from services.receiver.spool import Spool
from shared.bus import Bus, PublishError
from shared.log import get_logger
from shared.messages import InstanceReceived, Message, MessageError, decode
from shared.quarantine import quarantine
from shared.settings import DataPaths

log = get_logger(__name__)


class Receiver:
    """One DICOM listener feeding the bus."""

    def __init__(self, settings: ReceiverSettings, paths: DataPaths, bus: Bus) -> None:
        self._settings = settings
        self._bus = bus
        self._paths = paths
        self._spool = Spool(paths.spool)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None

    @property
    def ports(self) -> list[int]:
        return self._listener.ports if self._listener else []

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        removed = self._spool.prepare()
        if removed:
            log.warning("spool.partial_transfers_removed", count=len(removed))
        await self.republish()
        intake = Intake(
            self._spool,
            self._publish_from_thread,
            self._paths.quarantine,
            self._settings.min_free_disk_mb * 2**20,
        )
        self._listener = Listener(self._settings, self._spool, intake, self._publish_from_thread)
        await asyncio.to_thread(self._listener.start)

    def problem(self) -> str | None:
        return None if self._listener is not None else "not listening"

    async def stop(self) -> None:
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop, self._settings.shutdown_grace)
            self._listener = None

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

    def _publish_from_thread(self, message: Message) -> None:
        """Publish from an association thread and wait for the confirm."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._bus.publish(message), self._loop)
        try:
            future.result(timeout=self._settings.publish_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise PublishError(
                f"no confirm within receiver.publish_timeout ({self._settings.publish_timeout}s)"
            ) from None
