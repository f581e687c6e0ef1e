"""The study monitor's claims on both databases: one announcement per quiet period however
many monitors race, a failed publish given back, a claim whose sheet never came renewed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scansheet import ScanSheetSettings
from services.scansheet.completion import mark_sheet_written
from services.scansheet.monitor import StudyMonitor
from shared.bus import PublishError
from shared.bus.memory import MemoryBus
from shared.db.engine import create_engine, open_index
from shared.db.schema import studies
from shared.messages import Message
from shared.settings import BusSettings

STUDY = "1.2.3.4.5"
SETTINGS = ScanSheetSettings(stable_age=1, poll_interval=0.1, reannounce_after=0.5)
# For the races: no re-announcement within the test, however slow the machine, so that "still
# the same quiet period" is about the claim, not the clock.
RACING = ScanSheetSettings(stable_age=1, poll_interval=0.1, reannounce_after=600)


class RefusingBus(MemoryBus):
    """A bus that never confirms: what a broker outage looks like to a publisher."""

    async def publish(self, message: Message) -> None:
        raise PublishError("no confirm")


@asynccontextmanager
async def four_engines(url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Four engines on one fresh index, as four monitor processes would have."""
    first = await open_index(url, 10)
    all_engines = [first, *(create_engine(url) for _ in range(3))]
    async with first.begin() as connection:
        await connection.execute(
            sa.insert(studies).values(
                study_instance_uid=STUDY,
                study_folder="Unknown/DOE_JANE",
                last_received_at=datetime.now(UTC) - timedelta(seconds=10),
            )
        )
    yield all_engines
    for engine in all_engines:
        await engine.dispose()


async def announcements(bus: MemoryBus) -> list[str]:
    return [json.loads(body)["study_instance_uid"] for body in bus.waiting("scansheet")]


async def race(engines: list[AsyncEngine], bus: MemoryBus) -> int:
    monitors = [StudyMonitor(RACING, engine, bus) for engine in engines]
    return sum(await asyncio.gather(*(m.poll() for m in monitors for _ in range(3))))


async def _racing_monitors_announce_each_quiet_period_once(engines: list[AsyncEngine]) -> None:
    bus = MemoryBus(BusSettings())
    await bus.start()
    assert await race(engines, bus) == 1
    assert await announcements(bus) == [STUDY]
    assert await race(engines, bus) == 0  # still the same quiet period

    # A late instance: a new quiet period, announced once more when it is quiet again.
    async with engines[0].begin() as connection:
        await connection.execute(
            sa.update(studies).values(last_received_at=datetime.now(UTC) - timedelta(seconds=0.2))
        )
    assert await race(engines, bus) == 0  # not yet quiet for the stable age
    await asyncio.sleep(1)
    assert await race(engines, bus) == 1
    assert await announcements(bus) == [STUDY, STUDY]
    await bus.close()


async def _a_failed_publish_gives_the_claim_back(engines: list[AsyncEngine]) -> None:
    refusing = RefusingBus(BusSettings())
    await refusing.start()
    assert await StudyMonitor(SETTINGS, engines[0], refusing).poll() == 0
    bus = MemoryBus(BusSettings())
    await bus.start()
    assert await StudyMonitor(SETTINGS, engines[1], bus).poll() == 1
    assert await announcements(bus) == [STUDY]
    await bus.close()
    await refusing.close()


async def _an_announcement_without_a_sheet_is_renewed_until_the_sheet_is_written(
    engines: list[AsyncEngine],
) -> None:
    bus = MemoryBus(BusSettings())
    await bus.start()
    monitor = StudyMonitor(SETTINGS, engines[0], bus)
    assert await monitor.poll() == 1
    await asyncio.sleep(SETTINGS.reannounce_after + 0.1)  # the message was lost, say
    assert await monitor.poll() == 1
    async with engines[0].begin() as connection:
        last = await connection.scalar(sa.select(studies.c.last_received_at))
        assert last is not None
        await mark_sheet_written(connection, STUDY, last, datetime.now(UTC))
    await asyncio.sleep(SETTINGS.reannounce_after + 0.1)
    assert await monitor.poll() == 0
    await bus.close()


Scenario = Callable[[list[AsyncEngine]], Awaitable[None]]


def run_with_engines(url: str, scenario: Scenario) -> None:
    async def body() -> None:
        async with four_engines(url) as engines:
            await scenario(engines)

    asyncio.run(body())


def test_racing_monitors_announce_each_quiet_period_once(database_url: str) -> None:
    run_with_engines(database_url, _racing_monitors_announce_each_quiet_period_once)


def test_a_failed_publish_gives_the_claim_back(database_url: str) -> None:
    run_with_engines(database_url, _a_failed_publish_gives_the_claim_back)


def test_an_announcement_without_a_sheet_is_renewed_until_the_sheet_is_written(
    database_url: str,
) -> None:
    run_with_engines(
        database_url, _an_announcement_without_a_sheet_is_renewed_until_the_sheet_is_written
    )
