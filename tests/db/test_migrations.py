"""The index schema: migrations create exactly what the code queries, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.health import expected_revision
from shared.db.engine import create_engine, current_revision, open_index, upgrade
from shared.db.schema import metadata
from tests.support.cli import STORE_SERVER, store_server
from tests.support.process import run_together

HEAD = expected_revision()


def schema_differences(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_create_the_schema_the_code_uses(database_url: str) -> None:
    engine = await open_index(database_url, 10)
    try:
        assert await current_revision(engine) == HEAD
        async with engine.connect() as connection:
            assert await connection.run_sync(schema_differences) == []
            tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"accounts", "physician_names", "patients", "studies", "series", "instances"} <= (
            tables
        )
        assert {"study_bindings", "audit_events"} <= tables
    finally:
        await engine.dispose()


async def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    for _ in range(2):
        engine = await open_index(database_url, 10)
        await engine.dispose()
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == HEAD
    finally:
        await engine.dispose()


def test_db_commands_find_the_index_like_the_server(tmp_path: Path) -> None:
    assert store_server("db", "current", "--data-dir", str(tmp_path)).stdout.startswith("empty")
    upgraded = store_server("db", "upgrade", "--data-dir", str(tmp_path))
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"index at revision {HEAD}"
    assert (tmp_path / "index.sqlite").is_file()
    assert store_server("db", "current", "--data-dir", str(tmp_path)).stdout.strip() == HEAD


def test_three_processes_migrating_at_once_on_postgresql(postgres_url: str) -> None:
    upgrades = run_together([[STORE_SERVER, "db", "upgrade", "--database", postgres_url]] * 3)
    assert [done.returncode for done in upgrades] == [0, 0, 0], upgrades
    engine = create_engine(postgres_url)
    try:
        assert asyncio.run(current_revision(engine)) == HEAD
    finally:
        asyncio.run(engine.dispose())


async def test_patients_indexed_before_0004_keep_their_rows_and_are_found(
    database_url: str,
) -> None:
    """An index at 0003 with patients: after the upgrade each is keyed and searchable, and
    the indexer finds it again by its Patient ID."""
    from datetime import UTC, datetime

    from services.indexer.header import patient_identity

    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0003")
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO patients (patient_id, issuer, name, updated_at) "
                    "VALUES ('P1', '', 'Müller^Jörg', :at), ('P2', 'HOSP', NULL, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
        assert await upgrade(engine) == HEAD
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text("SELECT patient_id, identity, search_text FROM patients ORDER BY 1")
                )
            ).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("P1", patient_identity("P1", ""), "muller jorg p1"),
        ("P2", patient_identity("P2", "HOSP"), "p2"),
    ]
