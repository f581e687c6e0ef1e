"""PostgreSQL at scale: competing indexer processes, and a database restart mid-stream.

The restart is simulated with a TCP proxy in front of the real PostgreSQL (which other tests
share): every connection is cut and new ones are refused, then it comes back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset

from services.settings import Settings
from shared.bus import open_bus
from shared.db.engine import create_engine, open_index
from shared.db.schema import instances, series, studies
from shared.messages import InstanceFiled
from tests.indexer.conftest import indexed_events_of, indexer
from tests.support.filing import (
    counts,
    file_instance,
    indexer_settings,
    later,
    mr_study,
    wait_for_instances,
)
from tests.support.process import ServerProcess, wait_until
from tests.support.proxy import BrokerProxy

pytestmark = [pytest.mark.postgres, pytest.mark.amqp, pytest.mark.slow]


async def publish_all(settings: Settings, messages: list[InstanceFiled]) -> None:
    bus = open_bus(settings.bus)
    await bus.start()
    try:
        for message in messages:
            await bus.publish(message)
    finally:
        await bus.close()


async def test_three_indexer_processes_index_each_instance_once(
    amqp_url: str, exchange: str, postgres_url: str, tmp_path: Path
) -> None:
    settings = indexer_settings(tmp_path, amqp_url, exchange, postgres_url)
    engine = await open_index(postgres_url, 10)  # migrated once, before the workers race
    study = mr_study(4, 50)
    filed = [file_instance(settings.accounts_dir, ds) for ds in study]
    environment = {
        "STORE_SERVER_BUS__EXCHANGE": exchange,
        "STORE_SERVER_INDEXER__BATCH_SIZE": "20",
        "STORE_SERVER_INDEXER__PREFETCH": "20",
        "STORE_SERVER_INDEXER__MAX_WAIT_MS": "20",
    }
    command = ["indexer", "--bus", amqp_url, "--database", postgres_url]
    workers = [
        ServerProcess(
            [*command, "--data-dir", str(tmp_path)],
            port=None,
            log_path=tmp_path / f"indexer-{number}.log",
            environment=environment,
        )
        for number in range(3)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            wait_until(lambda w=worker: "indexer.started" in w.output, 30, "indexer start")
        await publish_all(settings, filed + filed[::2])  # with redeliveries
        await wait_for_instances(engine, 200, within=60)

        def comment(ds: Dataset) -> None:
            ds.ImageComments = "corrected"

        resent = [
            file_instance(
                settings.accounts_dir,
                ds,
                folder="refiled",
                received_at=later(message.received_at, 60),
                replaced=True,
                edit=comment,
            )
            for ds, message in zip(study[:10], filed[:10], strict=True)
        ]
        await publish_all(settings, resent + filed[:30] + resent[:5])

        async def all_resent_indexed() -> bool:
            async with engine.connect() as connection:
                refiled = await connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(instances)
                    .where(instances.c.path.like("smith/refiled/%"))
                )
            return refiled == 10

        deadline = asyncio.get_running_loop().time() + 60
        while not await all_resent_indexed():
            assert asyncio.get_running_loop().time() < deadline, "re-sends not indexed"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the old redeliveries behind them change nothing

        assert await counts(engine) == (1, 4, 200)
        async with engine.connect() as connection:
            totals = (await connection.execute(sa.select(studies))).one()
            per_series = (await connection.execute(sa.select(series.c.instance_count))).scalars()
            assert (totals.instance_count, totals.series_count) == (200, 4)
            assert sorted(per_series) == [50, 50, 50, 50]
        events = await indexed_events_of(settings)
        inserted = [e.sop_instance_uid or "" for e in events if e.detail["change"] == "inserted"]
        updated = [e.sop_instance_uid or "" for e in events if e.detail["change"] == "updated"]
        assert sorted(inserted) == sorted(m.sop_instance_uid for m in filed)
        assert sorted(updated) == sorted(m.sop_instance_uid for m in resent)
        for worker in workers:
            assert worker.terminate() == 0, worker.output
    finally:
        for worker in workers:
            worker.kill()
        await engine.dispose()


async def test_the_indexer_rides_out_a_database_restart(
    amqp_url: str, exchange: str, postgres_url: str, tmp_path: Path
) -> None:
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    with BrokerProxy("127.0.0.1", int(host_port.rsplit(":", 1)[1])) as proxy:
        proxied = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
        settings = indexer_settings(tmp_path, amqp_url, exchange, proxied, batch_size=10)
        direct = create_engine(postgres_url)
        filed = [file_instance(settings.accounts_dir, ds) for ds in mr_study(2, 60)]
        try:
            async with indexer(settings):
                await publish_all(settings, filed[:60])
                await wait_for_instances(direct, 1)
                proxy.cut()
                await publish_all(settings, filed[60:])
                await asyncio.sleep(2.0)
                during = (await counts(direct))[2]
                assert during < 120, "the database outage did not hold the indexer up"
                proxy.restore()
                await wait_for_instances(direct, 120, within=60)
                await asyncio.sleep(0.5)
                assert await counts(direct) == (1, 2, 120)
                async with direct.connect() as connection:
                    total = await connection.scalar(sa.select(studies.c.instance_count))
                assert total == 120
        finally:
            await direct.dispose()
    events = await indexed_events_of(indexer_settings(tmp_path, amqp_url, exchange, postgres_url))
    assert sorted(e.sop_instance_uid or "" for e in events) == sorted(
        m.sop_instance_uid for m in filed
    )
