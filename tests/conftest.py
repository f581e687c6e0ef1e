"""Fixtures shared by every test tier: data directories, ports, real brokers and databases."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.app import EMBEDDED
from shared.bus.amqp_queues import delete_topology
from shared.db.scratch import create_database, drop_database
from tests.support import services
from tests.support.proxy import BrokerProxy
from tests.support.server import ServerUnderTest, StartServer, server_settings


@pytest.fixture
def free_port() -> int:
    return services.free_tcp_port()


@pytest.fixture
def amqp_url() -> str:
    if not services.reachable(services.AMQP_URL):
        services.unavailable(f"RabbitMQ not reachable at {services.AMQP_URL}")
    return services.AMQP_URL


@pytest.fixture
def exchange(amqp_url: str) -> Iterator[str]:
    """A unique exchange (and so unique queues) for one test, deleted afterwards."""
    name = services.unique_name("test")
    yield name
    asyncio.run(delete_topology(amqp_url, name))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not services.reachable(services.POSTGRES_URL):
        services.unavailable(f"PostgreSQL not reachable at {services.POSTGRES_URL}")
    name = services.unique_name("store_test")
    url = asyncio.run(create_database(services.POSTGRES_URL, name))
    yield url
    asyncio.run(drop_database(services.POSTGRES_URL, name))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty index database: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/index.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database_proxy(postgres_url: str) -> Iterator[tuple[BrokerProxy, str]]:
    """PostgreSQL behind a proxy a test can cut (a restart) and restore; its URL through it."""
    parts = urlsplit(postgres_url)
    with BrokerProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxied = postgres_url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}")
        yield proxy, proxied


@dataclass(frozen=True)
class Backend:
    """Where a server under test keeps its messages and its index."""

    name: str
    bus_url: str
    exchange: str
    database_url: str | None


@pytest.fixture(params=["embedded", "production"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Both backends: in-process bus + SQLite, and RabbitMQ + PostgreSQL."""
    if request.param == "embedded":
        return Backend("embedded", "memory://", services.unique_name("test"), None)
    amqp: str = request.getfixturevalue("amqp_url")
    exchange: str = request.getfixturevalue("exchange")
    database: str = request.getfixturevalue("postgres_url")
    return Backend("production", amqp, exchange, database)


@pytest.fixture
def start_server(
    request: pytest.FixtureRequest, tmp_path: Path, free_port: int
) -> Iterator[StartServer]:
    """Start a server (embedded backend unless told otherwise); stopped after the test, before
    any fixture is torn down (a database dropped under a running server would keep its stop
    waiting on retries)."""

    def starter(
        backend: Backend | None = None,
        roles: Collection[str] = EMBEDDED,
        **overrides: Any,
    ) -> ServerUnderTest:
        chosen = backend or Backend("embedded", "memory://", "store-server", None)
        settings = server_settings(
            tmp_path / "data",
            free_port,
            bus_url=chosen.bus_url,
            exchange=chosen.exchange,
            database_url=chosen.database_url,
            **overrides,
        )
        server = ServerUnderTest(settings, roles=roles).__enter__()
        # Registered now, after every fixture's teardown: so run before them all.
        request.node.addfinalizer(lambda: server.__exit__(None, None, None))
        return server

    yield starter
