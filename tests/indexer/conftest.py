"""The indexer's fixtures: settings on either backend, and the indexer started as `run` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from services.app import Running, start
from services.indexer.service import Indexer
from services.settings import Settings
from shared.db.audit import AuditEvent
from shared.db.engine import create_engine
from shared.messages import InstanceFiled
from tests.conftest import Backend
from tests.support.filing import indexed_events, indexer_settings


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return indexer_settings(tmp_path, backend.bus_url, backend.exchange, backend.database_url)


@asynccontextmanager
async def indexer(settings: Settings) -> AsyncIterator[Running]:
    """The indexer started as `run` starts it, once its start-up catch-up is over."""
    running = await start(settings, {"indexer"})
    try:
        service = running.services["indexer"]
        assert isinstance(service, Indexer)
        await service.caught_up()
        yield running
    finally:
        await running.stop()


async def publish(running: Running, messages: list[InstanceFiled]) -> None:
    for message in messages:
        await running.bus.publish(message)


async def indexed_events_of(settings: Settings) -> list[AuditEvent]:
    """The ``indexed`` audit events, read with an engine of its own (after a stop, too)."""
    engine = create_engine(settings.database_url)
    try:
        return await indexed_events(engine)
    finally:
        await engine.dispose()
