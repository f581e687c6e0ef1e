"""The audit log follows the index's trail: every event once, across a restart of the
shipper, an event committed after a higher-numbered one (PostgreSQL), and a second process
that would ship too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.audit.shipping import AuditShipper, Copy, JsonLines
from shared.db.audit import Action, AuditEvent, record
from shared.db.engine import AsyncEngine, open_index


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def add(engine: AsyncEngine, *studies: str) -> None:
    async with engine.begin() as connection:
        await record(
            connection, [AuditEvent(Action.REFILED, "router", None, s, {}) for s in studies]
        )


def shipper(engine: AsyncEngine, log_file: Path, *more: Copy) -> AuditShipper:
    return AuditShipper(engine, [JsonLines(log_file), *more], log_file, poll_interval=0.05)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(600):  # 30 s
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


class Failing:
    """A copy whose destination is away until told otherwise."""

    name = "collector"

    def __init__(self) -> None:
        self.away = True
        self.got: list[int] = []

    async def ship(self, events: Sequence[dict[str, Any]]) -> None:
        if self.away:
            raise OSError("connection refused")
        self.got += [event["id"] for event in events]

    async def close(self) -> None:
        pass


def test_each_event_once_across_restarts_and_a_copy_that_was_away(
    database_url: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "audit.log"

    async def scenario() -> None:
        engine = await open_index(database_url, 10)
        try:
            await add(engine, "1.1", "1.2")
            collector = Failing()
            first = shipper(engine, log_file, collector)
            await first.start()
            await until(lambda: len(lines(log_file)) == 2)  # the log took them; not the collector
            await add(engine, "1.3")
            await first.stop()  # its last pass ships what stop-time brought
            assert [e["study_instance_uid"] for e in lines(log_file)] == ["1.1", "1.2", "1.3"]
            assert collector.got == []

            collector.away = False
            second = shipper(engine, log_file, collector)  # a new process: from the position
            await second.start()
            await add(engine, "1.4")
            await until(lambda: len(collector.got) == 4)
            await second.stop()
            studies = [e["study_instance_uid"] for e in lines(log_file)]
            assert studies == ["1.1", "1.2", "1.3", "1.4"]
            assert collector.got == [e["id"] for e in lines(log_file)]  # all, in order
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_an_event_committed_after_a_later_one_is_shipped_too(
    postgres_url: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "audit.log"

    async def scenario() -> None:
        engine = await open_index(postgres_url, 10)
        try:
            ships = shipper(engine, log_file)
            async with engine.connect() as slow:
                transaction = await slow.begin()
                await record(slow, [AuditEvent(Action.REFILED, "router", None, "early", {})])
                await add(engine, "late")  # a higher number, committed first
                await ships.ship_all()
                assert [e["study_instance_uid"] for e in lines(log_file)] == ["late"]
                await transaction.commit()
            await ships.ship_all()
            shipped = lines(log_file)
            assert [e["study_instance_uid"] for e in shipped] == ["late", "early"]
            assert shipped[1]["id"] < shipped[0]["id"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_one_process_ships_at_a_time(tmp_path: Path) -> None:
    log_file = tmp_path / "audit.log"
    url = f"sqlite:///{tmp_path}/index.sqlite"

    async def scenario() -> None:
        engine = await open_index(url, 10)
        try:
            await add(engine, "1.1")
            one, two = shipper(engine, log_file), shipper(engine, log_file)
            await one.start()
            await two.start()
            await add(engine, "1.2")
            await asyncio.sleep(0.5)
            await two.stop()
            await one.stop()
        finally:
            await engine.dispose()
        assert [e["study_instance_uid"] for e in lines(log_file)] == ["1.1", "1.2"]

    asyncio.run(scenario())
