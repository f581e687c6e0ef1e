"""The scan-sheet service: the study monitor, and the consumer of the ``scansheet`` queue.

``study.complete``: the study's sheet is written (a redelivery for a sheet that is already
current is acked without work). ``mpps.updated``: the step is recorded, and a COMPLETED step
whose instances are all indexed completes its studies at once. Start: the thumbnail pool, the
monitor, then the consumer. Stop: the monitor, the consumer (deliveries in hand finish), then
the pool.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scansheet.completion import sheet_is_current
from services.scansheet.content import UnknownStudy
from services.scansheet.monitor import StudyMonitor
from services.scansheet.sheet import SheetError, SheetWriter
from services.scansheet.steps import record_step
from services.scansheet.thumbnails import ThumbnailPool
from shared.bus import Bus, Delivery, Reject, Retry, Subscription
from shared.log import get_logger
from shared.messages import MppsUpdated, StudyComplete
from shared.settings import Settings

log = get_logger(__name__)

ROLE = "scansheet"
# On the in-process bus, the sheets announced before a stop are written first; what is left
# is announced again by the next start's monitor (scansheet.reannounce_after).
DRAIN_SECONDS = 30.0
# The database or the disk failing is worth a retry; the message is not at fault.
TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, ConnectionError, TimeoutError)


def thumbnail_pool(settings: Settings) -> ThumbnailPool:
    options = settings.scansheet
    return ThumbnailPool(
        options.thumbnail_workers,
        options.thumbnail_size,
        options.thumbnail_timeout,
        options.thumbnail_max_pixels,
    )


class ScanSheets:
    """One scan-sheet worker: any number may run against one bus and index."""

    def __init__(self, settings: Settings, bus: Bus, engine: AsyncEngine) -> None:
        self._settings = settings
        self._bus = bus
        self._engine = engine
        self._pool = thumbnail_pool(settings)
        self.writer = SheetWriter(settings, engine, self._pool)
        self.monitor = StudyMonitor(settings.scansheet, engine, bus)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        await self.monitor.start()
        self._subscription = await self._bus.consume(
            ROLE, self._handle, prefetch=self._settings.scansheet.prefetch
        )
        log.info(
            "scansheet.started",
            stable_age=self._settings.scansheet.stable_age,
            poll_interval=self._settings.scansheet.poll_interval,
        )

    async def stop(self) -> None:
        await self.monitor.stop()
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        self._pool.close()
        log.info("scansheet.stopped")

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        try:
            if isinstance(message, StudyComplete):
                await self._complete(message)
            elif isinstance(message, MppsUpdated):
                await self._record(message)
            else:
                raise Reject(f"the scan-sheet service does not take {delivery.routing_key}")
        except TRANSIENT as error:
            raise Retry(f"database unavailable: {type(error).__name__}: {error}") from error

    async def _complete(self, message: StudyComplete) -> None:
        uid = message.study_instance_uid
        async with self._engine.connect() as connection:
            if await sheet_is_current(connection, uid):
                log.info("scansheet.already_current", study_instance_uid=uid)
                return
        try:
            await self.writer.write(uid)
        except UnknownStudy as error:
            raise Reject(str(error)) from None
        except SheetError as error:
            raise Reject(str(error)) from None
        except OSError as error:
            raise Retry(f"cannot write the sheet: {error}") from error

    async def _record(self, message: MppsUpdated) -> None:
        async with self._engine.begin() as connection:
            step = await record_step(connection, message, datetime.now(UTC))
        log.info(
            "mpps.recorded",
            step_uid=step.step_uid,
            operation=message.operation,
            status=step.status,
            studies=step.study_instance_uids,
            referenced=len(step.referenced_sop_instance_uids),
            calling_ae=message.calling_ae,
        )
        await self.monitor.complete_step(step)
