"""Connect to the index and bring its schema up to date.

``sqlite:///path`` runs on aiosqlite (WAL journal, foreign keys on, a busy timeout so the
services in one process wait for each other instead of failing); ``postgresql://`` runs on
asyncpg. Start-up waits a bounded time for the database, logging each failed try.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.log import get_logger
from shared.retry import GaveUp, Patience, retrying

log = get_logger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Serialises migrations when several processes start at once against one PostgreSQL.
_MIGRATION_LOCK = 0x53544F52


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the async driver for a ``sqlite://`` or ``postgresql://`` URL."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    raise ValueError(f"database.url: unsupported database URL {url!r}")


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # One connection, handed out in turn: SQLite has one writer at a time, and its own
        # busy handler (sleeping in each connection's thread) let a writer that commits in a
        # tight loop starve the others past the busy timeout. The pool's queue is fair.
        engine = create_async_engine(
            async_url(url),
            connect_args={"timeout": 30},
            pool_size=1,
            max_overflow=0,
            pool_timeout=120,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(async_url(url), pool_size=5, max_overflow=10, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the driver, says when a transaction begins (see _sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    """Take SQLite's write lock when a transaction begins, not when it first writes.

    A transaction that reads and then writes would otherwise fail at once with "database is
    locked" whenever another connection wrote in between; taking the lock first makes it wait
    (busy_timeout) instead, which is what concurrent routers in one process need.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def wait_for_database(engine: AsyncEngine, within: float) -> None:
    """Return once a connection works; raise ``ConnectionError`` after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within

    async def connect() -> None:
        # An attempt ends at the deadline too: a server that accepts the connection and never
        # answers would otherwise hold it for the driver's own timeout (asyncpg's: 60 s).
        async with asyncio.timeout_at(deadline), engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    patience = Patience(within, (OSError, sa.exc.DBAPIError, sa.exc.InterfaceError))
    try:
        await retrying("database.connect", connect, patience)
    except GaveUp as gave_up:
        raise ConnectionError(
            f"database.url: cannot reach the database within {within:.0f}s: {gave_up.last}"
        ) from gave_up


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; return the revision the index is now at."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await connection.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))
    return await current_revision(engine)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_read_revision)


def _read_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def open_index(url: str, connect_timeout: float) -> AsyncEngine:
    """Connect, wait for the database, migrate; the engine the services share."""
    engine = create_engine(url)
    try:
        await wait_for_database(engine, connect_timeout)
        revision = await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    log.info("database.ready", dialect=engine.dialect.name, revision=revision)
    return engine


__all__ = ["AsyncConnection", "AsyncEngine", "create_engine", "open_index", "upgrade"]
