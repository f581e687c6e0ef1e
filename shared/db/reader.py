"""Reading the index from a process that never writes it: the receiver's query service.

The connection is made at first use, not at start-up, so that a receiver starts and keeps
storing while the database is away; a query made then fails with the reason. SQLite is opened
read-only (a missing file is an error, not a new empty index) and, in WAL mode, reads beside
the writers without blocking them. No migration is run from here: the writers' processes own
the schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.db.engine import async_url


def create_reader(url: str) -> AsyncEngine:
    """An engine that only reads the index at ``url``."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return create_async_engine(
            f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true",
            connect_args={"timeout": 30},
            pool_size=1,
            max_overflow=1,
        )
    return create_async_engine(async_url(url), pool_size=2, max_overflow=2, pool_pre_ping=True)


class IndexReader:
    """The index, read on demand."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            self._engine = create_reader(self._url)
        async with self._engine.connect() as connection:
            yield connection

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
