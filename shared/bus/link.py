"""The in-process bus across two processes: the receiver's end, linked by a socket to the
bus of the process that runs the consumers.

``store-server run`` on ``memory://`` runs the receiver in one process and the router, indexer
and scan-sheet service in a second, so that each has a core (one process and one GIL capped
the embedded server near the sum of their costs). The consumers' process holds the
:class:`~shared.bus.memory.MemoryBus`; the receiver publishes into it through
:class:`LinkPublisher`, and a publish is confirmed once the message is queued there, as a
publish on the in-process bus is. Durability is the in-process bus's: nothing published is
kept across a restart, every spooled file is published again at start-up.

Frames on the link (a stream socket between the two processes, never a network):

- receiver to consumers: ``>BQHI`` (kind, sequence, routing key length, body length), then
  the routing key and the body; kinds :data:`PUBLISH` and :data:`STOP` (an orderly stop: work
  through what is queued, then exit);
- consumers to receiver: ``>BQH`` (kind, sequence, reason length), then the reason; kinds
  :data:`READY` (consumers started), :data:`CONFIRMED` and :data:`FAILED`.

The end of the stream is the other process gone: the consumers stop (what they had queued is
still in the spool), the receiver's publishes fail, so no sender hears Success for an instance
that no consumer will see.
"""

from __future__ import annotations

import asyncio
import itertools
import struct

from shared.bus.base import Bus, PublishError
from shared.log import get_logger
from shared.messages import Message

log = get_logger(__name__)

PUBLISH, STOP = ord("P"), ord("S")
READY, CONFIRMED, FAILED = ord("R"), ord("C"), ord("F")
REQUEST = struct.Struct(">BQHI")
REPLY = struct.Struct(">BQH")
LONGEST_BODY = 16 * 2**20  # a message is a few kilobytes; this bounds a corrupted frame


class LinkError(ConnectionError):
    """The link broke or carried what is not a frame."""


class LinkPublisher:
    """The receiver's bus: publishes into the consumers' process and awaits its confirms."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._sequence = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read by ready(); when the consumers end before anybody asked, nobody need read it.
        self._ready.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._gone: str | None = None
        self.closed = asyncio.Event()  # set when the consumers' process is gone
        self._replies = asyncio.create_task(self._read_replies(), name="link-replies")

    @property
    def durable(self) -> bool:
        return False

    def problem(self) -> str | None:
        return self._gone

    async def ready(self, within: float) -> None:
        """Until the consumers' process says its consumers started; LinkError if it ends or
        does not within ``within`` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), within)
        except TimeoutError:
            raise LinkError(f"the consumers did not start within {within:.0f} s") from None

    async def publish(self, message: Message) -> None:
        await self.publish_raw(message.kind, message.to_bytes())

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        if self._gone is not None:
            raise PublishError(self._gone)
        sequence = next(self._sequence)
        key = routing_key.encode()
        confirmed = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = confirmed
        try:
            self._writer.write(REQUEST.pack(PUBLISH, sequence, len(key), len(body)) + key + body)
            await self._writer.drain()
            await confirmed
        except (ConnectionError, OSError) as error:
            raise PublishError(f"the consumers' process is gone: {error}") from None
        finally:
            self._waiting.pop(sequence, None)

    async def stop(self) -> None:
        """Ask the consumers to work through what is queued and exit."""
        if self._gone is None:
            self._writer.write(REQUEST.pack(STOP, 0, 0, 0))
            await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        await asyncio.gather(self._replies, return_exceptions=True)

    async def _read_replies(self) -> None:
        reason = "the consumers' process ended"
        try:
            while True:
                kind, sequence, length = REPLY.unpack(await self._reader.readexactly(REPLY.size))
                text = (await self._reader.readexactly(length)).decode(errors="replace")
                if kind == READY:
                    self._ready.set_result(None)
                    continue
                waiting = self._waiting.get(sequence)
                if waiting is None or waiting.done():
                    continue  # its publisher gave up (cancelled); nothing waits for it
                if kind == CONFIRMED:
                    waiting.set_result(None)
                else:
                    waiting.set_exception(PublishError(text))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as error:
            if not isinstance(error, asyncio.IncompleteReadError):
                reason = f"{reason}: {error}"
        finally:
            self._gone = reason
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(PublishError(reason))
            if not self._ready.done():
                self._ready.set_exception(LinkError(reason))
            self.closed.set()


async def serve_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bus: Bus) -> bool:
    """Publish what the receiver sends into ``bus`` until it asks to stop (True) or the link
    ends (False, the receiver's process gone). Starts by telling it the consumers are ready."""

    async def reply(kind: int, sequence: int, reason: str = "") -> None:
        text = reason.encode()[:4096]
        writer.write(REPLY.pack(kind, sequence, len(text)) + text)
        await writer.drain()

    try:
        await reply(READY, 0)
        while True:
            kind, sequence, key_length, body_length = REQUEST.unpack(
                await reader.readexactly(REQUEST.size)
            )
            if kind == STOP:
                return True
            if kind != PUBLISH or body_length > LONGEST_BODY:
                raise LinkError(f"not a frame: kind {kind}, {body_length} bytes")
            routing_key = (await reader.readexactly(key_length)).decode()
            body = await reader.readexactly(body_length)
            try:
                await bus.publish_raw(routing_key, body)
            except PublishError as error:
                await reply(FAILED, sequence, str(error))
            else:
                await reply(CONFIRMED, sequence)
    except (asyncio.IncompleteReadError, ConnectionError, OSError) as error:
        log.warning("link.receiver_gone", error=f"{type(error).__name__}: {error}")
        return False
