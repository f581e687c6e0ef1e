"""A server under test per test, on the backend the test asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from shared.messages import InstanceReceived, InstanceRefused
from tests.support import dcmtk
from tests.support.server import ServerUnderTest, StartServer


@pytest.fixture
def start_server(start_server: StartServer) -> StartServer:
    """The receiver on its own: what it spooled and published stays there to be checked."""

    def receiver_only(*args: Any, **overrides: Any) -> ServerUnderTest:
        return start_server(*args, roles=("receiver",), **overrides)

    return receiver_only


def published(server: ServerUnderTest) -> list[InstanceReceived]:
    """The instance.received messages waiting for the router, without consuming them."""
    return [
        InstanceReceived.model_validate_json(body)
        for body in waiting(server)
        if b'"spool_name"' in body
    ]


def refused(server: ServerUnderTest) -> list[InstanceRefused]:
    """The instance.refused messages waiting for the router (to be audited)."""
    return [
        InstanceRefused.model_validate_json(body) for body in waiting(server) if b'"reason"' in body
    ]


def waiting(server: ServerUnderTest) -> list[bytes]:
    """The bodies waiting in the router's queue, left in place."""
    assert server.running is not None
    bus = server.running.bus
    from shared.bus.memory import MemoryBus

    if isinstance(bus, MemoryBus):
        bodies = bus.waiting("router")
    else:
        bodies = server.call(peek_amqp(server.settings.bus.url, server.settings.bus.exchange))
    return bodies


async def peek_amqp(url: str, exchange: str) -> list[bytes]:
    """The bodies waiting in the router's queue on RabbitMQ, left in place."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{exchange}.router")
        held = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            held.append(message)
        bodies = [message.body for message in held]
        for message in held:
            await message.nack(requeue=True)
        await asyncio.sleep(0)
        return bodies
    finally:
        await connection.close()


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """DCMTK's storescp, keeping every data set exactly as it arrived."""
    received = tmp_path / "storescp"
    received.mkdir()
    with dcmtk.storescp(received, "+B", "+xa", "-pm") as port:
        yield port, received


def by_uid(paths: list[Path]) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}
