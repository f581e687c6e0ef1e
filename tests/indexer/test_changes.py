"""Redeliveries, re-sends, disagreeing instances and missing files, on both backends."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from pydicom.dataset import Dataset

from services.settings import Settings
from shared.db.schema import instances, studies
from shared.messages import InstanceFiled
from tests.bus.test_contract import wait_for_dead
from tests.indexer.conftest import indexed_events_of, indexer, publish
from tests.support.filing import counts, file_instance, later, mr_study, wait_for_instances


async def test_redeliveries_and_resends_change_only_what_changed(settings: Settings) -> None:
    accounts = settings.accounts_dir
    study = mr_study(2, 3)
    filed = [file_instance(accounts, ds) for ds in study]
    async with indexer(settings) as running:
        await publish(running, filed)
        await wait_for_instances(running.index, 6)
        await publish(running, filed + filed[:2])  # redelivered, some twice
        await asyncio.sleep(0.6)
        assert await counts(running.index) == (1, 2, 6)

        def comment(ds: Dataset) -> None:
            ds.ImageComments = "re-sent after a correction"

        resent = file_instance(
            accounts,
            study[0],
            received_at=later(filed[0].received_at, 60),
            replaced=True,
            edit=comment,
        )
        await publish(running, [resent, filed[0]])  # the re-send, then an old redelivery
        await asyncio.sleep(0.6)
        assert await counts(running.index) == (1, 2, 6)
        async with running.index.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(instances).where(
                        instances.c.sop_instance_uid == resent.sop_instance_uid
                    )
                )
            ).one()
            study_row = (await connection.execute(sa.select(studies))).one()
        assert row.header["00204000"]["Value"] == ["re-sent after a correction"]
        assert row.size == (accounts / resent.path).stat().st_size
        assert (study_row.instance_count, study_row.series_count) == (6, 2)

    events = await indexed_events_of(settings)
    assert len(events) == 7
    changes = [e.detail["change"] for e in events if e.sop_instance_uid == resent.sop_instance_uid]
    assert changes == ["inserted", "updated"]


async def test_disagreeing_study_attributes_keep_the_first_and_record_the_rest(
    settings: Settings,
) -> None:
    study = mr_study(1, 3)
    study[1].StudyDescription = "Brain MRI with contrast"
    study[2].StudyDescription = "brain"
    study[2].InstitutionName = ""  # empty: fills nothing, disagrees with nothing
    base = file_instance(settings.accounts_dir, study[0]).received_at
    filed = [
        file_instance(settings.accounts_dir, ds, received_at=later(base, n))
        for n, ds in enumerate(study)
    ]
    async with indexer(settings) as running:
        await publish(running, filed[:1])
        await wait_for_instances(running.index, 1)
        await publish(running, filed[1:])
        await wait_for_instances(running.index, 3)
        await asyncio.sleep(0.3)
        async with running.index.connect() as connection:
            row = (await connection.execute(sa.select(studies))).one()
    assert row.description == "Brain MRI"
    assert row.institution == "General Hospital"
    assert row.conflicts == {"description": ["Brain MRI with contrast", "brain"]}


async def test_a_missing_file_is_retried_then_dead_lettered_unless_stale(
    settings: Settings,
) -> None:
    study = mr_study(1, 3)
    filed = [file_instance(settings.accounts_dir, ds) for ds in study]
    gone = filed[2]
    (settings.accounts_dir / gone.path).unlink()
    # Filed again elsewhere later, then the first copy's message arrives: stale, skipped.
    moved = file_instance(
        settings.accounts_dir, study[1], folder="moved", received_at=later(filed[1].received_at)
    )
    (settings.accounts_dir / filed[1].path).unlink()
    async with indexer(settings) as running:
        await publish(running, [filed[0], moved])
        await wait_for_instances(running.index, 2)
        await publish(running, [filed[1], gone])
        [letter] = await wait_for_dead(running.bus, "indexer", 1)
        await asyncio.sleep(0.3)
        assert await counts(running.index) == (1, 1, 2)
        assert len(await running.bus.dead_letters("indexer")) == 1  # the stale one acked
    assert InstanceFiled.model_validate_json(letter.body).sop_instance_uid == gone.sop_instance_uid
    assert "file missing" in letter.reason and "3 attempts" in letter.reason
