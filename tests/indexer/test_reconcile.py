"""Start-up catch-up from the audit trail: what was filed but never indexed gets indexed."""

from __future__ import annotations

import sqlalchemy as sa

from services.settings import Settings
from shared.db.engine import open_index
from shared.db.schema import instances
from tests.indexer.conftest import indexed_events_of, indexer
from tests.support.filing import counts, file_instance, later, mr_study, record_filing


async def test_start_up_indexes_filings_the_index_lacks(settings: Settings) -> None:
    study = mr_study(2, 3)
    filed = [file_instance(settings.accounts_dir, ds) for ds in study]
    # The first copy of instance 0, replaced later by a copy in another folder; instance 5's
    # file is gone (deleted by hand): skipped, logged.
    replacement = file_instance(
        settings.accounts_dir,
        study[0],
        folder="refiled",
        received_at=later(filed[0].received_at),
        replaced=True,
    )
    (settings.accounts_dir / filed[5].path).unlink()
    engine = await open_index(settings.database_url, 10)
    try:
        await record_filing(engine, [*filed, replacement])
    finally:
        await engine.dispose()

    # No message on the bus: only the trail says these were filed.
    async with indexer(settings) as running:
        assert await counts(running.index) == (1, 2, 5)
        async with running.index.connect() as connection:
            path = await connection.scalar(
                sa.select(instances.c.path).where(
                    instances.c.sop_instance_uid == replacement.sop_instance_uid
                )
            )
        assert path == replacement.path
    assert len(await indexed_events_of(settings)) == 5

    # A second start finds nothing to do.
    async with indexer(settings) as running:
        assert await counts(running.index) == (1, 2, 5)
    assert len(await indexed_events_of(settings)) == 5
