"""Scratch PostgreSQL databases beside another, for the test suite and the benchmarks: each
run gets an empty database of its own and drops it afterwards."""

from __future__ import annotations

import uuid

import asyncpg


async def create_database(url: str, name: str) -> str:
    """Create the empty database ``name`` on ``url``'s server; return its URL."""
    await _administer(url, f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str, name: str) -> None:
    """Drop ``name`` on ``url``'s server, closing whatever is still connected to it."""
    await _administer(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def scratch_database(url: str, prefix: str) -> str | None:
    """A new database named ``<prefix>_<random>`` beside ``url``'s; None when PostgreSQL
    does not answer there (a benchmark then skips it)."""
    try:
        return await create_database(url, f"{prefix}_{uuid.uuid4().hex[:10]}")
    except (OSError, asyncpg.PostgresError):
        return None


async def _administer(url: str, statement: str) -> None:
    admin = await asyncpg.connect(url, timeout=10)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()
