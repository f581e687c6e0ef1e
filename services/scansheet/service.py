"""The scan-sheet service: the study monitor, and the consumer of the ``scansheet`` queue.

``study.complete``: the study's sheet is written (a redelivery for a sheet that is already
current writes nothing), then ``study.ready`` is published for the hooks. ``mpps.updated``: the
step is recorded, and a COMPLETED step whose instances are all indexed completes its studies
at once. Start: the thumbnail pool, the
monitor, then the consumer. Stop: the monitor, the consumer (deliveries in hand finish), then
the pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scansheet.completion import sheet_is_current, study_ready
from services.scansheet.content import UnknownStudy
from services.scansheet.monitor import StudyMonitor
from services.scansheet.render_html import SheetLook, TemplateError
from services.scansheet.render_pdf import pdf_unavailable
from services.scansheet.settings import ScanSheetSettings
from services.scansheet.sheet import SheetError, SheetWriter, WrittenSheet
from services.scansheet.steps import record_step
from services.scansheet.thumbnails import ThumbnailPool
from shared.bus import Bus, Delivery, Reject, Retry, Routes, Subscription
from shared.consumers import riding_out_outages
from shared.log import get_logger
from shared.messages import MppsUpdated, StudyComplete
from shared.process import StartError
from shared.settings import DataPaths

log = get_logger(__name__)

ROLE = "scansheet"
# On the in-process bus, the sheets announced before a stop are written first; what is left
# is announced again by the next start's monitor (scansheet.reannounce_after).
DRAIN_SECONDS = 30.0


def thumbnail_pool(options: ScanSheetSettings) -> ThumbnailPool:
    return ThumbnailPool(
        options.thumbnail_workers,
        options.thumbnail_size,
        options.thumbnail_timeout,
        options.thumbnail_max_pixels,
        options.thumbnail_memory_mb * 2**20,
    )


async def write_sheet_now(
    settings: ScanSheetSettings,
    paths: DataPaths,
    engine: AsyncEngine,
    file_mode: int,
    study_uid: str,
) -> WrittenSheet:
    """Write one study's sheet now, outside the service (``store-server sheet``, a re-file),
    exactly as the service writes it, and record it as current."""
    pool = thumbnail_pool(settings)
    try:
        return await SheetWriter(settings, paths.accounts, engine, pool, file_mode).write(study_uid)
    finally:
        pool.close()


class ScanSheets:
    """One scan-sheet worker: any number may run against one bus and index."""

    def __init__(
        self,
        settings: ScanSheetSettings,
        paths: DataPaths,
        bus: Bus,
        engine: AsyncEngine,
        file_mode: int,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._engine = engine
        self._pool = thumbnail_pool(settings)
        self.writer = SheetWriter(settings, paths.accounts, engine, self._pool, file_mode)
        self.monitor = StudyMonitor(settings, engine, bus)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        try:
            SheetLook.of(self._settings).check()  # a site's template or logo: told at start
        except TemplateError as error:
            raise StartError(str(error)) from None
        if self._settings.pdf and (why := pdf_unavailable()) is not None:
            log.warning("scansheet.pdf_unavailable", reason=why)
        await self.monitor.start()
        routes = Routes(ROLE).on(StudyComplete, self._on_complete).on(MppsUpdated, self._on_step)
        self._subscription = await self._bus.consume(ROLE, routes, prefetch=self._settings.prefetch)
        log.info(
            "scansheet.started",
            stable_age=self._settings.stable_age,
            poll_interval=self._settings.poll_interval,
        )

    def problem(self) -> str | None:
        if self._subscription is None:
            return "not consuming"
        return self.monitor.problem()

    async def stop(self) -> None:
        await self.monitor.stop()
        if self._subscription is not None:
            await self._subscription.stop(drain=DRAIN_SECONDS)
            self._subscription = None
        self._pool.close()
        log.info("scansheet.stopped")

    async def _on_complete(self, delivery: Delivery[StudyComplete]) -> None:
        await riding_out_outages(
            "scansheet",
            partial(self._complete, delivery.message),
            self._settings.database_retry_seconds,
        )

    async def _on_step(self, delivery: Delivery[MppsUpdated]) -> None:
        await riding_out_outages(
            "mpps", partial(self._record, delivery.message), self._settings.database_retry_seconds
        )

    async def _complete(self, message: StudyComplete) -> None:
        uid = message.study_instance_uid
        async with self._engine.connect() as connection:
            current = await sheet_is_current(connection, uid)
        if current:
            log.info("scansheet.already_current", study_instance_uid=uid)
        else:
            try:
                await self.writer.write(uid)
            except UnknownStudy as error:
                raise Reject(str(error)) from None
            except SheetError as error:
                raise Reject(str(error)) from None
            except OSError as error:
                raise Retry(f"cannot write the sheet: {error}") from error
        # Announced again for a sheet already current: a redelivery after a failed publish
        # must still reach the hooks, which run once per sheet whatever they are told.
        async with self._engine.connect() as connection:
            ready = await study_ready(connection, uid)
        if ready is not None:
            await self._bus.publish(ready)

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
