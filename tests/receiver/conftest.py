"""A server under test per test, on the backend the test asks for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from shared.messages import AuditReported, InstanceReceived, InstanceRefused
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


def reported(server: ServerUnderTest, action: str, count: int = 1) -> list[AuditReported]:
    """The audit events of ``action`` the receiver reported (waiting in the audit queue for
    the routers), once there are ``count``: reports go out in the background."""
    deadline = time.monotonic() + 30
    while True:
        found = [AuditReported.model_validate_json(b) for b in waiting(server, "audit")]
        found = [report for report in found if report.action == action]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def waiting(server: ServerUnderTest, role: str = "router") -> list[bytes]:
    """The bodies waiting in a role's queue (the router's), left in place."""
    assert server.running is not None
    bus = server.running.bus
    from shared.bus.memory import MemoryBus

    if isinstance(bus, MemoryBus):
        return bus.waiting(role)
    url, exchange = server.settings.bus.url, server.settings.bus.exchange
    kind = "audit.reported" if role == "audit" else "instance.received"
    return server.call(peek_amqp(url, exchange, kind, f"{exchange}.{role}"))


async def peek_amqp(
    url: str, exchange: str, kind: str = "instance.received", queue_name: str = ""
) -> list[bytes]:
    """The bodies of ``kind`` waiting in the router's queue on RabbitMQ, left in place (the
    receiver's audit reports wait there too)."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name or f"{exchange}.router")
        held = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            held.append(message)
        bodies = [message.body for message in held if message.type == kind]
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
