"""RabbitMQ queue layout and dead-letter reading for :mod:`shared.bus.amqp`.

Per consumer role ``R`` under exchange ``X``:

- ``X`` (durable topic exchange) routes each message kind to the queues bound to it;
- ``X.R`` (quorum queue) holds deliveries for the role's workers; a delivery that keeps
  crashing its consumer before the ack is dead-lettered by the broker after
  ``BROKER_DELIVERY_LIMIT`` deliveries;
- ``X.R.retry`` (classic durable queue, no consumer) holds a retried message for its backoff
  (per-message expiry), after which the broker dead-letters it back into ``X.R``;
- ``X.R.dead`` (quorum queue, no consumer) keeps what was given up on, with the reason in the
  headers, for an operator.

Queue arguments are constants, not settings: RabbitMQ refuses to re-declare a queue with other
arguments, and every process declares the whole topology.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.bus.base import TOPOLOGY, DeadLetter

BROKER_DELIVERY_LIMIT = 20
ATTEMPT_HEADER = "x-store-server-attempt"
REASON_HEADER = "x-store-server-reason"
ROUTING_KEY_HEADER = "x-store-server-routing-key"


async def declare_queues(channel: AbstractChannel, name: str) -> AbstractQueue:
    """Declare a role's work, retry and dead-letter queues; return the work queue."""
    await channel.declare_queue(f"{name}.dead", durable=True, arguments={"x-queue-type": "quorum"})
    await channel.declare_queue(
        f"{name}.retry",
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
    )
    return await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": BROKER_DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"{name}.dead",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


async def delete_topology(url: str, exchange: str) -> None:
    """Remove an exchange and every queue the bus declared under it (a test's or a
    benchmark's own, never a site's: what the queues hold is lost)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for consumer in TOPOLOGY:
            for suffix in ("", ".retry", ".dead"):
                await channel.queue_delete(f"{exchange}.{consumer.role}{suffix}")
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def read_dead_letters(channel: AbstractChannel, name: str) -> list[DeadLetter]:
    """The dead letters of work queue ``name``, oldest first, left in place."""
    queue = await channel.get_queue(f"{name}.dead", ensure=True)
    held: list[AbstractIncomingMessage] = []
    letters: list[DeadLetter] = []
    while (incoming := await queue.get(no_ack=False, fail=False)) is not None:
        held.append(incoming)
        headers = {k: str(v) for k, v in (incoming.headers or {}).items()}
        letters.append(
            DeadLetter(
                routing_key=headers.get(ROUTING_KEY_HEADER, incoming.type or ""),
                body=incoming.body,
                reason=headers.get(REASON_HEADER, death_reason(incoming)),
                attempts=int(headers.get(ATTEMPT_HEADER, "1")),
                dead_at=incoming.timestamp or datetime.now(UTC),
                headers=headers,
            )
        )
    for incoming in held:  # leave them where they were
        await incoming.nack(requeue=True)
    return letters


async def requeue_dead(channel: AbstractChannel, name: str, publish_timeout: float) -> int:
    """Move every dead letter of work queue ``name`` back into it, attempts reset.

    Each one is acked off the dead-letter queue only after the broker confirmed its copy in
    the work queue: a failure half-way leaves it where it was (or, at worst, in both).
    """
    queue = await channel.get_queue(f"{name}.dead", ensure=True)
    moved = 0
    while (incoming := await queue.get(no_ack=False, fail=False)) is not None:
        routing_key, _ = origin(incoming)
        await channel.default_exchange.publish(
            Message(
                incoming.body,
                delivery_mode=DeliveryMode.PERSISTENT,
                content_type=incoming.content_type,
                type=routing_key,
                headers={ATTEMPT_HEADER: 1, ROUTING_KEY_HEADER: routing_key},
            ),
            name,
            mandatory=True,
            timeout=publish_timeout,
        )
        await incoming.ack()
        moved += 1
    return moved


def origin(incoming: AbstractIncomingMessage) -> tuple[str, int]:
    """The routing key it was first published under, and which attempt this delivery is."""
    headers = incoming.headers or {}
    attempt = int(str(headers.get(ATTEMPT_HEADER, 1)))
    # Our own forwards carry the kind in a header; every publish also names it as the type,
    # which survives the broker's own dead-lettering (which changes the routing key).
    kind = headers.get(ROUTING_KEY_HEADER) or incoming.type or incoming.routing_key or ""
    return str(kind), attempt


def death_reason(incoming: AbstractIncomingMessage) -> str:
    """The reason the broker gave when it dead-lettered a message itself (delivery limit)."""
    deaths = (incoming.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason", "unknown")
        return f"broker: {reason.decode() if isinstance(reason, bytes) else reason}"
    return "broker: delivery limit reached"
