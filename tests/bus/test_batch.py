"""Batch consumption, one contract on both buses.

A batch holds at most ``max_batch`` deliveries and waits at most ``max_wait`` for more; a
returning handler acks the whole batch; a failing batch is handed over one delivery at a time,
so a Reject or Retry costs only its own message; poison payloads never reach the handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shared.bus import BatchRoutes, Bus, Delivery, Reject, Retry
from shared.messages import InstanceReceived, InstanceRefused
from tests.bus.test_contract import make_bus, received, wait_for_dead

__all__ = ["make_bus"]  # the fixture, parametrised over both buses


class BatchRecorder:
    """A batch handler that records each batch and fails as its script says."""

    def __init__(
        self, script: Callable[[list[Delivery[InstanceReceived]]], None] | None = None
    ) -> None:
        self.batches: list[list[Delivery[InstanceReceived]]] = []
        self._script = script
        self.changed = asyncio.Event()

    async def __call__(self, deliveries: list[Delivery[InstanceReceived]]) -> None:
        self.batches.append(list(deliveries))
        self.changed.set()
        if self._script is not None:
            self._script(deliveries)

    def uids(self, batch: list[Delivery[InstanceReceived]]) -> list[str]:
        return [uid(delivery) for delivery in batch]

    async def wait_for(self, condition: Callable[[], bool], within: float = 15) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def uid(delivery: Delivery[InstanceReceived]) -> str:
    assert isinstance(delivery.message, InstanceReceived)
    return delivery.message.sop_instance_uid


def delivered(recorder: BatchRecorder) -> list[str]:
    return [uid(d) for batch in recorder.batches for d in batch]


async def test_batches_are_bounded_and_acked_whole(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()
    for index in range(25):
        await bus.publish(received(index))
    recorder = BatchRecorder()
    await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, recorder), max_batch=10, max_wait=0.5
    )
    await recorder.wait_for(lambda: len(delivered(recorder)) >= 25)
    await asyncio.sleep(0.5)  # anything unacked would come back

    assert sorted(delivered(recorder)) == sorted(f"1.2.3.{i}" for i in range(25))
    assert all(len(batch) <= 10 for batch in recorder.batches)
    assert max(len(batch) for batch in recorder.batches) == 10
    assert await bus.dead_letters("router") == []


async def test_a_lone_message_waits_at_most_max_wait(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()
    recorder = BatchRecorder()
    await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, recorder), max_batch=100, max_wait=0.3
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await bus.publish(received(1))
    await recorder.wait_for(lambda: len(recorder.batches) == 1)
    waited = time.monotonic() - started
    assert 0.25 <= waited < 2.0
    assert recorder.uids(recorder.batches[0]) == ["1.2.3.1"]


async def test_a_rejected_message_does_not_hold_back_its_batch(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()

    def refuse_five(deliveries: list[Delivery[InstanceReceived]]) -> None:
        if any(uid(d) == "1.2.3.5" for d in deliveries):
            raise Reject("instance 5 is unreadable")

    recorder = BatchRecorder(refuse_five)
    for index in range(8):
        await bus.publish(received(index))
    await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, recorder), max_batch=8, max_wait=1.0
    )
    [letter] = await wait_for_dead(bus, "router", 1)
    await asyncio.sleep(0.5)

    assert InstanceReceived.model_validate_json(letter.body).sop_instance_uid == "1.2.3.5"
    assert letter.reason == "rejected: instance 5 is unreadable"
    assert len(recorder.batches[0]) == 8
    # Then each alone: eight single runs, the seven good ones acked by theirs.
    assert [len(batch) for batch in recorder.batches[1:]] == [1] * 8
    assert sorted(delivered(recorder)) == sorted(
        [f"1.2.3.{i}" for i in range(8)] + [f"1.2.3.{i}" for i in range(8)]
    )


async def test_a_retried_message_is_retried_alone_and_bounded(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()

    def keep_failing_two(deliveries: list[Delivery[InstanceReceived]]) -> None:
        if any(uid(d) == "1.2.3.2" for d in deliveries):
            raise Retry("file not there yet")

    recorder = BatchRecorder(keep_failing_two)
    for index in range(4):
        await bus.publish(received(index))
    await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, recorder), max_batch=4, max_wait=1.0
    )
    [letter] = await wait_for_dead(bus, "router", 1)

    runs_of_two = [d.attempt for batch in recorder.batches for d in batch if uid(d) == "1.2.3.2"]
    others = [uid(d) for batch in recorder.batches for d in batch if uid(d) != "1.2.3.2"]
    # Attempt 1 in the batch and alone, then attempts 2 and 3 (max_attempts = 3).
    assert runs_of_two == [1, 1, 2, 3]
    assert sorted(others) == sorted(["1.2.3.0", "1.2.3.1", "1.2.3.3"] * 2)
    assert "file not there yet" in letter.reason and "3 attempts" in letter.reason


async def test_poison_in_a_batch_is_dead_lettered_before_the_handler(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    await bus.publish(received(1))
    await bus.publish_raw("instance.received", b"\xff not json")
    await bus.publish(received(2))
    recorder = BatchRecorder()
    await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, recorder), max_batch=10, max_wait=0.5
    )
    [letter] = await wait_for_dead(bus, "router", 1)
    await recorder.wait_for(lambda: len(delivered(recorder)) >= 2)
    assert sorted(delivered(recorder)) == ["1.2.3.1", "1.2.3.2"]
    assert "invalid instance.received message" in letter.reason


async def test_stopping_a_subscription_finishes_the_batch_in_hand(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    finished: list[str] = []

    async def slow(deliveries: list[Delivery[InstanceReceived]]) -> None:
        await asyncio.sleep(0.5)
        finished.extend(uid(d) for d in deliveries)

    subscription = await bus.consume_batch(
        "router", BatchRoutes("router").on(InstanceReceived, slow), max_batch=5, max_wait=0.05
    )
    for index in range(3):
        await bus.publish(received(index))
    await asyncio.sleep(0.3)
    await subscription.stop()
    assert sorted(finished) == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]


async def test_a_batch_of_two_kinds_goes_to_each_kind_s_handler(
    make_bus: Callable[..., Bus],
) -> None:
    """The router's queue takes received and refused instances: each kind to its handler,
    in arrival order, in one batch; a kind nobody handles is dead-lettered alone."""
    bus = make_bus()
    await bus.start()
    refused_seen: list[list[str]] = []

    async def on_refused(deliveries: list[Delivery[InstanceRefused]]) -> None:
        refused_seen.append([d.message.sop_instance_uid for d in deliveries])

    recorder = BatchRecorder()
    for index in range(4):
        await bus.publish(received(index))
        await bus.publish(refused(index))
    routes = BatchRoutes("router").on(InstanceReceived, recorder).on(InstanceRefused, on_refused)
    await bus.consume_batch("router", routes, max_batch=8, max_wait=1.0)
    await recorder.wait_for(lambda: len(delivered(recorder)) >= 4)
    assert recorder.uids(recorder.batches[0]) == [f"1.2.3.{i}" for i in range(4)]
    assert refused_seen == [[f"9.9.{i}" for i in range(4)]]


async def test_a_kind_without_a_handler_is_dead_lettered_alone(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    await bus.publish(received(1))
    await bus.publish(refused(1))
    await bus.publish(received(2))
    recorder = BatchRecorder()
    routes = BatchRoutes("router").on(InstanceReceived, recorder)
    await bus.consume_batch("router", routes, max_batch=8, max_wait=0.5)
    [letter] = await wait_for_dead(bus, "router", 1)
    await recorder.wait_for(lambda: sorted(delivered(recorder)) == ["1.2.3.1", "1.2.3.2"])
    assert "takes instance.received, not instance.refused" in letter.reason


def refused(index: int) -> InstanceRefused:
    return InstanceRefused(
        sop_instance_uid=f"9.9.{index}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        status=0xA900,
        reason="dataset does not match SOP class",
        received_at=datetime.now(UTC),
        calling_ae="MR_ROOM2",
        called_ae="STORE_SERVER",
        peer_address="127.0.0.1",
        peer_port=40000,
    )
