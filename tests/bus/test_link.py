"""The link between ``store-server run``'s two processes, over a real socket pair: a publish is
confirmed once it is queued in the consumers' bus, refused with that bus's reason, and fails
(never hangs) once the other process is gone."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from shared.bus import TOPOLOGY, PublishError
from shared.bus.link import REQUEST, LinkError, LinkPublisher, serve_link
from shared.bus.memory import MemoryBus
from shared.messages import decode
from shared.settings import BusSettings
from tests.bus.test_contract import filed

FILED = filed(1)


@dataclass
class Linked:
    publisher: LinkPublisher
    bus: MemoryBus
    serving: asyncio.Task[bool]
    theirs: asyncio.StreamWriter


@asynccontextmanager
async def linked(queue_limit: int = 100) -> AsyncIterator[Linked]:
    """The receiver's end and the consumers' end of one socket pair, in one loop."""
    ours, theirs = socket.socketpair()
    bus = MemoryBus(BusSettings(memory_queue_limit=queue_limit))
    await bus.start()
    their_reader, their_writer = await asyncio.open_unix_connection(sock=theirs)
    serving = asyncio.create_task(serve_link(their_reader, their_writer, bus))
    publisher = LinkPublisher(*await asyncio.open_unix_connection(sock=ours))
    try:
        await publisher.ready(5)
        yield Linked(publisher, bus, serving, their_writer)
    finally:
        await publisher.close()
        their_writer.close()
        await asyncio.gather(serving, return_exceptions=True)
        await bus.close()


async def test_a_confirmed_publish_is_queued_for_every_consumer_of_its_kind() -> None:
    async with linked() as link:
        await link.publisher.publish(FILED)
        for consumer in TOPOLOGY:
            if "instance.filed" in consumer.routing_keys:
                [body] = link.bus.waiting(consumer.role)
                assert decode("instance.filed", body) == FILED
            else:
                assert link.bus.waiting(consumer.role) == []
        assert link.publisher.problem() is None


async def test_publishes_in_flight_together_are_each_confirmed() -> None:
    async with linked() as link:
        messages = [filed(n) for n in range(50)]
        await asyncio.gather(*(link.publisher.publish(message) for message in messages))
        assert len(link.bus.waiting("indexer")) == 50


async def test_the_consumers_bus_refusing_is_the_publishers_error() -> None:
    async with linked(queue_limit=1) as link:
        await link.publisher.publish(FILED)
        with pytest.raises(PublishError, match="queue full"):
            await link.publisher.publish(FILED)
        with pytest.raises(PublishError, match="no queue is bound"):
            await link.publisher.publish_raw("no.such.kind", b"{}")
        assert link.publisher.problem() is None  # the link itself is fine


async def test_a_stop_ends_the_consumers_side_in_order() -> None:
    async with linked() as link:
        await link.publisher.stop()
        assert await asyncio.wait_for(link.serving, 5) is True


async def test_the_consumers_process_gone_fails_every_publish() -> None:
    async with linked() as link:
        link.serving.cancel()
        link.theirs.close()
        await asyncio.wait_for(link.publisher.closed.wait(), 5)
        assert link.publisher.problem() == "the consumers' process ended"
        with pytest.raises(PublishError, match="consumers' process ended"):
            await link.publisher.publish(FILED)


async def test_a_publish_waiting_when_the_consumers_go_fails_instead_of_hanging() -> None:
    ours, theirs = socket.socketpair()
    their_reader, their_writer = await asyncio.open_unix_connection(sock=theirs)
    publisher = LinkPublisher(*await asyncio.open_unix_connection(sock=ours))
    waiting = asyncio.create_task(publisher.publish(FILED))
    await their_reader.readexactly(REQUEST.size)  # it arrived; no confirm will come
    their_writer.close()
    with pytest.raises(PublishError, match="consumers' process ended"):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(LinkError, match="ended"):
        await publisher.ready(1)
    await publisher.close()


async def test_consumers_that_never_start_are_a_start_error() -> None:
    ours, theirs = socket.socketpair()
    publisher = LinkPublisher(*await asyncio.open_unix_connection(sock=ours))
    with pytest.raises(LinkError, match="did not start within"):
        await publisher.ready(0.2)
    theirs.close()
    await publisher.close()


async def test_the_receivers_process_gone_or_garbage_ends_the_consumers_side() -> None:
    async with linked() as link:
        await link.publisher.close()
        assert await asyncio.wait_for(link.serving, 5) is False
    async with linked() as link:
        link.publisher._writer.write(REQUEST.pack(ord("X"), 1, 0, 0))
        assert await asyncio.wait_for(link.serving, 5) is False
