"""The receiver's read-only role on PostgreSQL: made by `store-server db upgrade`, able to read
the index (tables added later too) and unable to change it."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from shared.db.engine import open_index
from shared.db.reader import IndexReader
from tests.support import services
from tests.support.cli import store_server
from tests.support.services import drop_role


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return url.replace(parts.netloc, f"{role}@{parts.hostname}:{parts.port or 5432}")


async def reads_and_cannot_write(url: str) -> None:
    reader = IndexReader(url)
    async with reader.connection() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM studies")) == 0
        assert await connection.scalar(sa.text("SELECT count(*) FROM later_table")) == 0
        with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            await connection.execute(
                sa.text("INSERT INTO accounts (name, created_at) VALUES ('x', now())")
            )
    await reader.close()


def test_db_upgrade_makes_a_role_that_only_reads_the_index(postgres_url: str) -> None:
    role = services.unique_name("query").lower()
    environment = {
        **os.environ,
        "STORE_SERVER_DATABASE__URL": postgres_url,
        "STORE_SERVER_DATABASE__QUERY_ROLE": role,
        "STORE_SERVER_DATABASE__QUERY_PASSWORD": "reader-secret",
    }
    try:
        for _ in range(2):  # run again (an upgrade, a changed password): the same role
            done = store_server("db", "upgrade", env=environment)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "index at revision" in done.stdout

        async def later_table() -> None:  # as a later migration would add one
            engine = await open_index(postgres_url, 10)
            async with engine.begin() as connection:
                await connection.execute(sa.text("CREATE TABLE later_table (id integer)"))
            await engine.dispose()

        asyncio.run(later_table())
        asyncio.run(reads_and_cannot_write(as_role(postgres_url, role)))
    finally:
        asyncio.run(drop_role(postgres_url, role))


def test_a_role_without_its_password_stops_the_command_naming_both(postgres_url: str) -> None:
    environment = {
        **os.environ,
        "STORE_SERVER_DATABASE__URL": postgres_url,
        "STORE_SERVER_DATABASE__QUERY_ROLE": "reader",
    }
    done = store_server("db", "upgrade", env=environment)
    assert done.returncode != 0
    assert "database.query_role and database.query_password go together" in done.stderr
