"""The bus interface and what both implementations share: topology, outcomes, backoff.

A consumer's handler either returns (the delivery is acked), raises :class:`Retry` (tried again
after a backoff, at most ``max_attempts`` times in all, then dead-lettered) or raises
:class:`Reject` (dead-lettered at once). A body that is not a valid message is rejected the
same way. Any other exception is logged with its traceback and treated as :class:`Retry`, so a
bug costs bounded retries and a dead letter, never a lost message or a dead consumer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from shared.messages import Message


@dataclass(frozen=True)
class Consumer:
    """A consumer role: its queue takes the messages published under ``routing_keys``."""

    role: str
    routing_keys: tuple[str, ...]


# The whole topology; every process declares all of it when it starts, so nothing published
# before a consumer first connects is dropped.
TOPOLOGY: tuple[Consumer, ...] = (
    # The receiver's refusals are audited by the router, which writes the receiver's rows.
    Consumer("router", ("instance.received", "instance.refused")),
    Consumer("indexer", ("instance.filed",)),
    # MPPS updates go to the scan-sheet service: a COMPLETED step completes its study.
    Consumer("scansheet", ("study.complete", "mpps.updated")),
    # Forwarding by rule (each filed instance, each completed study), and the hooks that run
    # once a study's sheet is written.
    Consumer("forwarder", ("instance.filed", "study.complete", "study.ready")),
    # The receiver's audit events, recorded by the routers: a queue of their own, so that
    # they never take the room of instances in the router's (bounded) queue.
    Consumer("audit", ("audit.reported",)),
)


class PublishError(RuntimeError):
    """The bus did not confirm the message: treat it as not published."""


class Retry(Exception):
    """The work failed for a reason that may pass (a lock, a restarting database)."""


class Reject(Exception):
    """The message can never be handled; dead-letter it with this reason."""


M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """One delivery of a message of kind ``M`` to a consumer."""

    message: M
    routing_key: str
    attempt: int = 1


@dataclass(frozen=True)
class DeadLetter:
    """A message a consumer gave up on, and why."""

    routing_key: str
    body: bytes
    reason: str
    attempts: int
    dead_at: datetime | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler: TypeAlias = Callable[[Delivery[M]], Awaitable[None]]
# A batch handler gets every delivery of a batch at once; returning acks them all.
BatchHandler: TypeAlias = Callable[[list[Delivery[M]]], Awaitable[None]]


class Routes:
    """What a consumer does with each kind of message its queue takes: one typed handler per
    kind, so that no handler has to ask what it was given."""

    def __init__(self, role: str) -> None:
        self._role = role
        self._handlers: dict[str, Handler[Any]] = {}

    def on(self, kind: type[M], handler: Handler[M]) -> Routes:
        self._handlers[kind.kind] = handler
        return self

    async def __call__(self, delivery: Delivery[Message]) -> None:
        handler = self._handlers.get(delivery.routing_key)
        if handler is None:
            raise Reject(
                f"the {self._role} takes {', '.join(sorted(self._handlers))}, "
                f"not {delivery.routing_key}"
            )
        await handler(delivery)


class BatchRoutes:
    """What a batch consumer does with each kind of message its queue takes: one typed batch
    handler per kind. A batch of mixed kinds is split by kind (each part in arrival order)
    and the parts handled one after the other; a kind without a handler (a topology
    mistake) is rejected to the dead-letter queue, alone."""

    def __init__(self, role: str) -> None:
        self._role = role
        self._handlers: dict[str, BatchHandler[Any]] = {}

    def on(self, kind: type[M], handler: BatchHandler[M]) -> BatchRoutes:
        self._handlers[kind.kind] = handler
        return self

    async def __call__(self, deliveries: list[Delivery[Message]]) -> None:
        parts: dict[str, list[Delivery[Message]]] = {}
        for delivery in deliveries:
            if delivery.routing_key not in self._handlers:
                raise Reject(
                    f"the {self._role} takes {', '.join(sorted(self._handlers))}, "
                    f"not {delivery.routing_key}"
                )
            parts.setdefault(delivery.routing_key, []).append(delivery)
        for routing_key, part in parts.items():
            await self._handlers[routing_key](part)


class Subscription(Protocol):
    """One consumer's hold on its role's queue, stopped on its own."""

    async def stop(self, *, drain: float = 0.0) -> None:
        """Take no new deliveries and wait for the ones in hand to finish.

        With ``drain``, first keep delivering until nothing is left for this consumer in this
        process, for at most ``drain`` seconds: the in-process bus loses what is queued when
        its process stops, a broker keeps it, so on RabbitMQ there is nothing to wait for.
        """
        ...


class Publisher(Protocol):
    """What a process that only publishes (the receiver) needs of a bus."""

    @property
    def durable(self) -> bool:
        """True when published messages survive a restart of this process."""
        ...

    def problem(self) -> str | None:
        """Why the bus cannot deliver or publish now (its broker connection lost), or None."""
        ...

    async def publish(self, message: Message) -> None:
        """Publish and wait for the confirm; raise :class:`PublishError` otherwise."""
        ...


class Bus(Publisher, Protocol):
    """Publish messages and consume them per role, with the delivery guarantees above."""

    async def start(self) -> None:
        """Connect (waiting a bounded time for the broker) and declare the whole topology."""
        ...

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish an already-encoded body (re-queueing dead letters, tests of poison input)."""
        ...

    async def consume(
        self, role: str, handler: Handler[Message], *, prefetch: int | None = None
    ) -> Subscription:
        """Start delivering the role's queue to ``handler`` (typically :class:`Routes`),
        ``prefetch`` at a time."""
        ...

    async def consume_batch(
        self,
        role: str,
        routes: BatchRoutes,
        *,
        max_batch: int,
        max_wait: float,
        prefetch: int | None = None,
    ) -> Subscription:
        """Deliver the role's queue to ``routes``, in batches: up to ``max_batch``
        deliveries, or whatever arrived within ``max_wait`` seconds of the first. A returning
        handler acks the whole batch; a failing one is given each delivery alone, and each
        then gets the outcome of :meth:`consume` (ack, retry, dead letter), so one bad
        message holds back no other.
        Payloads that are not valid messages are dead-lettered before the handler sees them.
        """
        ...

    async def dead_letters(self, role: str) -> list[DeadLetter]:
        """The role's dead letters, oldest first, left in place."""
        ...

    async def requeue_dead_letters(self, role: str) -> int:
        """Give the role's dead letters back to its workers, each with a fresh set of
        attempts (once the cause is mended); return how many."""
        ...

    async def close(self) -> None:
        """Stop every subscription still running, then disconnect."""
        ...


def backoff_seconds(attempt: int, first: float, ceiling: float) -> float:
    """Delay before retrying after failed attempt number ``attempt`` (1-based), doubling."""
    return float(min(first * 2 ** (attempt - 1), ceiling))


def consumer_for(role: str) -> Consumer:
    for consumer in TOPOLOGY:
        if consumer.role == role:
            return consumer
    raise ValueError(f"no consumer role {role!r}; known: {[c.role for c in TOPOLOGY]}")
