"""Batch consumption, shared by both buses: collecting a batch and judging its outcome.

A batch is whatever the queue holds, up to ``max_batch`` deliveries, or what arrives within
``max_wait`` seconds of its first delivery. The handler gets the decoded deliveries at once.
When it returns, every delivery is acked. When it fails, each delivery is handed to it again
alone and judged by :func:`shared.bus.dispatch.judge`, exactly as :meth:`Bus.consume` would:
one poison message (or one whose file is gone) costs its own retries and dead letter, and the
others of its batch are acked after their single run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from shared.bus.base import BatchHandler, Delivery
from shared.bus.dispatch import Action, Verdict, decode_delivery, judge
from shared.log import get_logger
from shared.messages import Message

log = get_logger(__name__)

T = TypeVar("T")


async def collect(queue: asyncio.Queue[T], max_batch: int, max_wait: float) -> list[T]:
    """Wait for one item, then take more until ``max_batch`` or ``max_wait`` seconds passed.

    Cancelling loses nothing: ``Queue.get`` takes an item only once its wait is over, and the
    items already taken are returned through :class:`BatchCancelled`.
    """
    batch = [await queue.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    try:
        while len(batch) < max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await queue.get())
            except TimeoutError:
                break
    except asyncio.CancelledError:
        raise BatchCancelled[T](batch) from None
    return batch


class BatchCancelled(asyncio.CancelledError, Generic[T]):
    """The consumer was stopped while collecting; ``batch`` was taken and must be settled."""

    def __init__(self, batch: Sequence[T]) -> None:
        super().__init__("batch collection cancelled")
        self.batch = list(batch)


async def run_batches(
    queue: asyncio.Queue[T],
    max_batch: int,
    max_wait: float,
    run: Callable[[list[T]], Awaitable[None]],
) -> None:
    """Collect and run batches until cancelled; a batch taken when cancelled is still run."""
    while True:
        try:
            batch = await collect(queue, max_batch, max_wait)
        except BatchCancelled as stopped:
            await run(stopped.batch)
            raise
        await run(batch)


class Settle(Generic[T]):
    """How a bus reads and settles its own kind of delivery (an envelope, an AMQP message)."""

    def __init__(
        self,
        origin: Callable[[T], tuple[str, bytes, int]],
        settle: Callable[[T, Verdict], Awaitable[None]],
    ) -> None:
        self.origin = origin
        self.settle = settle


async def deliver_batch(
    handler: BatchHandler[Message],
    batch: list[T],
    bus: Settle[T],
    *,
    role: str,
    max_attempts: int,
) -> None:
    """Dead-letter what does not decode, run the handler on the rest, settle each."""
    decoded: list[tuple[T, Delivery[Message]]] = []
    for item in batch:
        routing_key, body, attempt = bus.origin(item)
        outcome = decode_delivery(role=role, routing_key=routing_key, body=body, attempt=attempt)
        if isinstance(outcome, Verdict):
            await bus.settle(item, outcome)
        else:
            decoded.append((item, outcome))
    verdicts = await judge_batch(
        handler, [delivery for _, delivery in decoded], role=role, max_attempts=max_attempts
    )
    for (item, _), verdict in zip(decoded, verdicts, strict=True):
        await bus.settle(item, verdict)


async def judge_batch(
    handler: BatchHandler[Message],
    deliveries: list[Delivery[Message]],
    *,
    role: str,
    max_attempts: int,
) -> list[Verdict]:
    """One verdict per delivery, in order."""
    if not deliveries:
        return []
    if len(deliveries) > 1:
        try:
            await handler(deliveries)
        # Whatever failed the batch, the one-by-one pass below gives each delivery the
        # outcome its own failure deserves (Reject, Retry, or a logged bug), so nothing is
        # decided here.
        except Exception as error:
            log.warning(
                "batch.failed_one_by_one",
                role=role,
                size=len(deliveries),
                error=f"{type(error).__name__}: {error}",
            )
        else:
            return [Verdict(Action.ACK)] * len(deliveries)

    async def alone(delivery: Delivery[Message]) -> None:
        await handler([delivery])

    return [
        await judge(alone, delivery, role=role, max_attempts=max_attempts)
        for delivery in deliveries
    ]
