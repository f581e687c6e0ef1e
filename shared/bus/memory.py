"""The in-process bus: asyncio queues with the broker's ack, retry and dead-letter semantics.

Used by the embedded server, where every service runs in one process. Messages live only in
memory, so :attr:`MemoryBus.durable` is false and the receiver re-publishes its whole spool on
start-up. Queues are bounded: a full queue refuses the publish (like RabbitMQ's
``reject-publish`` overflow), which the receiver turns into "out of resources" for the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.bus.base import (
    TOPOLOGY,
    BatchHandler,
    BatchRoutes,
    DeadLetter,
    Handler,
    PublishError,
    backoff_seconds,
    consumer_for,
)
from shared.bus.batch import Settle, deliver_batch, run_batches
from shared.bus.dispatch import Action, Verdict, dispatch
from shared.log import get_logger
from shared.messages import Message
from shared.settings import BusSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class _Envelope:
    routing_key: str
    body: bytes
    attempt: int = 1


class _MemorySubscription:
    """One consumer of a role's in-process queue: its worker tasks and deliveries in hand."""

    def __init__(self, bus: MemoryBus, role: str) -> None:
        self._bus = bus
        self.role = role
        self.workers: list[asyncio.Task[None]] = []
        self.in_flight: set[asyncio.Task[None]] = set()

    def track(self, task: asyncio.Task[None]) -> None:
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def stop(self, *, drain: float = 0.0) -> None:
        if drain > 0:
            waiting = await self._bus.drain(self, drain)
            if waiting:
                log.warning("bus.drain_timeout", role=self.role, waiting=waiting, seconds=drain)
        workers, self.workers = self.workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)
        self._bus.forget(self)


class MemoryBus:
    """A real bus for one process; same contract as :class:`shared.bus.amqp.AmqpBus`."""

    def __init__(self, settings: BusSettings) -> None:
        self._settings = settings
        self._queues: dict[str, asyncio.Queue[_Envelope]] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._subscriptions: list[_MemorySubscription] = []
        self._retries: dict[str, set[asyncio.Task[None]]] = {}
        self._closed = False

    @property
    def durable(self) -> bool:
        return False

    async def start(self) -> None:
        for consumer in TOPOLOGY:
            self._queues.setdefault(
                consumer.role, asyncio.Queue(maxsize=self._settings.memory_queue_limit)
            )
            self._dead.setdefault(consumer.role, [])
            self._retries.setdefault(consumer.role, set())

    def problem(self) -> str | None:
        return "the in-process bus is closed" if self._closed else None

    async def publish(self, message: Message) -> None:
        await self.publish_raw(message.kind, message.to_bytes())

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        if self._closed or not self._queues:
            raise PublishError("the bus is not running")
        targets = [
            self._queues[consumer.role]
            for consumer in TOPOLOGY
            if routing_key in consumer.routing_keys
        ]
        if not targets:
            raise PublishError(f"no queue is bound to {routing_key!r}: message returned")
        if any(queue.full() for queue in targets):
            raise PublishError(f"queue full ({self._settings.memory_queue_limit} messages)")
        for queue in targets:
            queue.put_nowait(_Envelope(routing_key, body))

    async def consume(
        self, role: str, handler: Handler[Message], *, prefetch: int | None = None
    ) -> _MemorySubscription:
        consumer_for(role)
        subscription = self._subscribe(role)
        for _ in range(prefetch or self._settings.prefetch):
            task = asyncio.create_task(self._work(subscription, handler), name=f"consume-{role}")
            subscription.workers.append(task)
        return subscription

    def _subscribe(self, role: str) -> _MemorySubscription:
        subscription = _MemorySubscription(self, role)
        self._subscriptions.append(subscription)
        return subscription

    def forget(self, subscription: _MemorySubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def _work(self, subscription: _MemorySubscription, handler: Handler[Message]) -> None:
        queue = self._queues[subscription.role]
        while True:
            envelope = await queue.get()
            delivery = asyncio.create_task(self._deliver(subscription.role, handler, envelope))
            subscription.track(delivery)
            try:
                # Shielded: stopping the consumer lets the delivery in hand finish.
                await asyncio.shield(delivery)
            finally:
                queue.task_done()

    async def _deliver(self, role: str, handler: Handler[Message], envelope: _Envelope) -> None:
        verdict = await dispatch(
            handler,
            role=role,
            routing_key=envelope.routing_key,
            body=envelope.body,
            attempt=envelope.attempt,
            max_attempts=self._settings.max_attempts,
        )
        self._settle(role, envelope, verdict)

    async def consume_batch(
        self,
        role: str,
        routes: BatchRoutes,
        *,
        max_batch: int,
        max_wait: float,
        prefetch: int | None = None,
    ) -> _MemorySubscription:
        # One collector per call: batches are the unit of concurrency, and ``prefetch`` has
        # nothing to bound here since the queue is in this process already.
        consumer_for(role)
        subscription = self._subscribe(role)
        task = asyncio.create_task(
            self._work_batches(subscription, routes, max_batch, max_wait),
            name=f"consume-{role}",
        )
        subscription.workers.append(task)
        return subscription

    async def _work_batches(
        self,
        subscription: _MemorySubscription,
        handler: BatchHandler[Message],
        max_batch: int,
        max_wait: float,
    ) -> None:
        role = subscription.role
        queue = self._queues[role]
        settle = Settle[_Envelope](
            lambda e: (e.routing_key, e.body, e.attempt), self._settle_async(role)
        )

        async def run(envelopes: list[_Envelope]) -> None:
            if not envelopes:
                return
            task = asyncio.create_task(
                deliver_batch(
                    handler,
                    envelopes,
                    settle,
                    role=role,
                    max_attempts=self._settings.max_attempts,
                )
            )
            subscription.track(task)
            try:
                # Shielded: stopping the consumer lets the batch in hand finish.
                await asyncio.shield(task)
            finally:
                for _ in envelopes:
                    queue.task_done()

        await run_batches(queue, max_batch, max_wait, run)

    def _settle_async(
        self, role: str
    ) -> Callable[[_Envelope, Verdict], Coroutine[None, None, None]]:
        async def settle(envelope: _Envelope, verdict: Verdict) -> None:
            self._settle(role, envelope, verdict)

        return settle

    def _settle(self, role: str, envelope: _Envelope, verdict: Verdict) -> None:
        if verdict.action is Action.RETRY:
            delay = backoff_seconds(
                envelope.attempt, self._settings.retry_backoff, self._settings.retry_backoff_max
            )
            again = _Envelope(envelope.routing_key, envelope.body, envelope.attempt + 1)
            task = asyncio.create_task(self._requeue_later(role, again, delay))
            self._retries[role].add(task)
            task.add_done_callback(self._retries[role].discard)
        elif verdict.action is Action.DEAD_LETTER:
            self._dead[role].append(
                DeadLetter(
                    routing_key=envelope.routing_key,
                    body=envelope.body,
                    reason=verdict.reason,
                    attempts=envelope.attempt,
                    dead_at=datetime.now(UTC),
                )
            )

    async def _requeue_later(self, role: str, envelope: _Envelope, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._queues[role].put(envelope)

    async def drain(self, subscription: _MemorySubscription, within: float) -> int:
        """Wait until the role's queue, its retries and the subscription's deliveries in hand
        are done, for at most ``within`` seconds; return how many messages still wait."""
        role = subscription.role
        if self._closed:  # a closed bus delivers nothing more: nothing to wait for
            return self._queues[role].qsize()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while waiting := self._queues[role].qsize() + len(self._retries[role]):
            if loop.time() >= deadline:
                return waiting
            await asyncio.sleep(0.02)
        if subscription.in_flight:
            await asyncio.wait(subscription.in_flight, timeout=max(0.0, deadline - loop.time()))
        return self._queues[role].qsize()

    async def dead_letters(self, role: str) -> list[DeadLetter]:
        consumer_for(role)
        return list(self._dead.get(role, []))

    async def requeue_dead_letters(self, role: str) -> int:
        consumer_for(role)
        letters, self._dead[role] = self._dead[role], []
        for letter in letters:
            await self._queues[role].put(_Envelope(letter.routing_key, letter.body))
        return len(letters)

    def waiting(self, role: str) -> list[bytes]:
        """The bodies waiting in the role's queue, oldest first (for health checks and tests)."""
        queue = self._queues[role]
        # asyncio.Queue has no public peek; its deque is read, never changed, here.
        return [envelope.body for envelope in list(queue._queue)]  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._closed:
            return
        for subscription in list(self._subscriptions):
            await subscription.stop()
        for retries in self._retries.values():
            for task in list(retries):
                task.cancel()
        self._closed = True
        if any(queue.qsize() for queue in self._queues.values()):
            waiting = {role: queue.qsize() for role, queue in self._queues.items()}
            # Not lost: every instance is still in the spool and is re-published at start-up.
            log.info("bus.memory_closed_with_messages", waiting=waiting)
