"""One contract, two buses: the in-process bus and RabbitMQ must behave the same.

Each test runs against both. Messages published before a consumer starts are delivered;
a handler that returns acks; Retry redelivers with a bounded number of attempts; Reject and
poison payloads go to the dead-letter queue with their reason; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from shared.bus import Bus, DeadLetter, Delivery, PublishError, Reject, Retry, open_bus
from shared.bus.amqp_queues import delete_topology
from shared.messages import InstanceFiled, InstanceReceived, Message, StudyComplete
from shared.settings import BusSettings
from tests.support import services


def received(index: int) -> InstanceReceived:
    return InstanceReceived(
        sop_instance_uid=f"1.2.3.{index}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        spool_name=f"{index:020d}-abc.dcm",
        size=1000 + index,
        received_at=datetime.now(UTC),
        calling_ae="MR_ROOM2",
        called_ae="STORE_SERVER",
        peer_address="127.0.0.1",
        peer_port=40000,
    )


def filed(index: int) -> InstanceFiled:
    return InstanceFiled(
        sop_instance_uid=f"1.2.3.{index}",
        sop_class_uid="1.2.4",
        study_instance_uid="1.2.5",
        series_instance_uid="1.2.6",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        account="Guest/DOE^JOHN",
        path="Guest/x/Dicom/001_T1/001-001-000001.dcm",
        size=10,
        received_at=datetime.now(UTC),
        calling_ae="CT",
    )


@pytest.fixture(params=["memory", "amqp"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Bus]]:
    """Open buses of one kind on one fresh topology; all closed and deleted afterwards."""
    exchange = services.unique_name("contract")
    if request.param == "amqp":
        if not services.reachable(services.AMQP_URL):
            services.unavailable(f"RabbitMQ not reachable at {services.AMQP_URL}")
        url = services.AMQP_URL
    else:
        url = "memory://"
    opened: list[Bus] = []
    shared_memory_bus: list[Bus] = []

    def make(**overrides: object) -> Bus:
        settings = BusSettings(
            url=url,
            exchange=exchange,
            retry_backoff=0.05,
            retry_backoff_max=0.2,
            max_attempts=3,
            publish_timeout=5,
            **overrides,
        )
        # In one process the in-process bus is one object; "another process" is the same bus.
        if url == "memory://" and shared_memory_bus and not overrides:
            return shared_memory_bus[0]
        bus = open_bus(settings)
        opened.append(bus)
        if url == "memory://" and not overrides:
            shared_memory_bus.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.close()
    if url != "memory://":
        await delete_topology(url, exchange)


class Recorder:
    """A handler that records deliveries and follows a script of outcomes."""

    def __init__(self, script: Callable[[Delivery[Message]], None] | None = None) -> None:
        self.deliveries: list[Delivery[Message]] = []
        self._script = script
        self.changed = asyncio.Event()

    async def __call__(self, delivery: Delivery[Message]) -> None:
        self.deliveries.append(delivery)
        self.changed.set()
        if self._script is not None:
            self._script(delivery)

    async def wait_for(self, count: int, within: float = 15) -> None:
        async with asyncio.timeout(within):
            while len(self.deliveries) < count:
                self.changed.clear()
                await self.changed.wait()


async def wait_for_dead(bus: Bus, role: str, count: int, within: float = 15) -> list[DeadLetter]:
    """Poll the dead-letter queue: the bus has no event for it (operators read it by hand)."""
    deadline = asyncio.get_running_loop().time() + within
    while len(letters := await bus.dead_letters(role)) < count:
        assert asyncio.get_running_loop().time() < deadline, "no dead letter arrived"
        await asyncio.sleep(0.05)
    return letters


async def test_published_before_consumer_starts_is_delivered_and_acked(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    sent = [received(index) for index in range(5)]
    for message in sent:
        await bus.publish(message)

    recorder = Recorder()
    await bus.consume("router", recorder)
    await recorder.wait_for(5)
    await asyncio.sleep(0.3)  # anything unacked would come back

    assert sorted(d.message.model_dump()["sop_instance_uid"] for d in recorder.deliveries) == (
        sorted(m.sop_instance_uid for m in sent)
    )
    assert all(d.attempt == 1 for d in recorder.deliveries)
    assert await bus.dead_letters("router") == []


async def test_messages_reach_only_the_queues_bound_to_their_kind(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    router, indexer, scansheet = Recorder(), Recorder(), Recorder()
    await bus.consume("router", router)
    await bus.consume("indexer", indexer)
    await bus.consume("scansheet", scansheet)
    await bus.publish(received(1))
    await bus.publish(filed(3))
    await bus.publish(StudyComplete(study_instance_uid="1.2.5", reason="manual"))
    await asyncio.gather(router.wait_for(1), indexer.wait_for(1), scansheet.wait_for(1))
    await asyncio.sleep(0.2)
    assert [type(d.message) for d in router.deliveries] == [InstanceReceived]
    assert [type(d.message) for d in indexer.deliveries] == [InstanceFiled]
    assert [type(d.message) for d in scansheet.deliveries] == [StudyComplete]


async def test_retry_redelivers_then_succeeds(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()

    def fail_once(delivery: Delivery[Message]) -> None:
        if delivery.attempt == 1:
            raise Retry("database restarting")

    recorder = Recorder(fail_once)
    await bus.consume("router", recorder)
    await bus.publish(received(1))
    await recorder.wait_for(2)
    await asyncio.sleep(0.4)
    assert [d.attempt for d in recorder.deliveries] == [1, 2]
    assert await bus.dead_letters("router") == []


async def test_retries_are_bounded_then_dead_lettered_with_the_reason(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()

    def always(delivery: Delivery[Message]) -> None:
        raise Retry("disk full")

    recorder = Recorder(always)
    await bus.consume("router", recorder)
    await bus.publish(received(7))
    [letter] = await wait_for_dead(bus, "router", 1)
    assert [d.attempt for d in recorder.deliveries] == [1, 2, 3]
    assert "disk full" in letter.reason and "3 attempts" in letter.reason
    assert InstanceReceived.model_validate_json(letter.body).sop_instance_uid == "1.2.3.7"


async def test_unexpected_exception_counts_as_retry(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()

    def buggy(delivery: Delivery[Message]) -> None:
        raise KeyError("bug")

    recorder = Recorder(buggy)
    await bus.consume("router", recorder)
    await bus.publish(received(8))
    [letter] = await wait_for_dead(bus, "router", 1)
    assert len(recorder.deliveries) == 3
    assert "KeyError" in letter.reason


async def test_reject_dead_letters_at_once(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()

    def reject(delivery: Delivery[Message]) -> None:
        raise Reject("not a DICOM file")

    recorder = Recorder(reject)
    await bus.consume("router", recorder)
    await bus.publish(received(9))
    [letter] = await wait_for_dead(bus, "router", 1)
    assert len(recorder.deliveries) == 1
    assert letter.reason == "rejected: not a DICOM file"


async def test_poison_payload_is_dead_lettered_without_reaching_the_handler(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    recorder = Recorder()
    await bus.consume("router", recorder)
    await bus.publish_raw("instance.received", b'{"sop_instance_uid": "../../etc"}')
    await bus.publish_raw("instance.received", b"\xff not json")
    letters = await wait_for_dead(bus, "router", 2)
    assert recorder.deliveries == []
    assert all("invalid instance.received message" in letter.reason for letter in letters)


async def test_unroutable_publish_fails(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    await bus.start()
    with pytest.raises(PublishError):
        await bus.publish_raw("nobody.listens", b"{}")


async def test_stopping_a_subscription_waits_for_the_delivery_in_hand(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    finished: list[str] = []

    async def slow(delivery: Delivery[Message]) -> None:
        await asyncio.sleep(0.5)
        assert isinstance(delivery.message, InstanceReceived)
        finished.append(delivery.message.sop_instance_uid)

    subscription = await bus.consume("router", slow, prefetch=1)
    await bus.publish(received(1))
    await asyncio.sleep(0.2)
    await subscription.stop()
    assert finished == ["1.2.3.1"]


async def test_stopping_one_subscription_leaves_the_others_consuming(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    router, indexer = Recorder(), Recorder()
    routing = await bus.consume("router", router)
    await bus.consume("indexer", indexer)
    await routing.stop()
    await bus.publish(received(1))
    await bus.publish(filed(2))
    await indexer.wait_for(1)
    await asyncio.sleep(0.3)
    assert router.deliveries == []


# Only the in-process bus loses what is queued when its process stops, so only it drains.
@pytest.mark.parametrize("make_bus", ["memory"], indirect=True)
async def test_a_draining_stop_first_works_through_what_is_queued(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    for index in range(20):
        await bus.publish(received(index))

    async def slowly(delivery: Delivery[Message]) -> None:
        await asyncio.sleep(0.01)
        await recorder(delivery)

    recorder = Recorder()
    subscription = await bus.consume("router", slowly, prefetch=2)
    await subscription.stop(drain=30)
    assert len(recorder.deliveries) == 20


# The in-process bus lives and dies with its process, by design: RabbitMQ only.
@pytest.mark.parametrize("make_bus", ["amqp"], indirect=True)
async def test_messages_wait_in_the_broker_for_a_consumer_in_another_process(
    make_bus: Callable[..., Bus],
) -> None:
    publisher = make_bus()
    await publisher.start()
    await publisher.publish(received(3))
    await publisher.close()

    consumer = make_bus(prefetch=5)
    await consumer.start()
    recorder = Recorder()
    await consumer.consume("router", recorder)
    await recorder.wait_for(1)
    assert recorder.deliveries[0].message.model_dump()["sop_instance_uid"] == "1.2.3.3"


# RabbitMQ's queue length is the broker's own policy: the in-process bound only.
@pytest.mark.parametrize("make_bus", ["memory"], indirect=True)
async def test_full_in_process_queue_refuses_publishes(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus(memory_queue_limit=2)
    await bus.start()
    await bus.publish(received(1))
    await bus.publish(received(2))
    with pytest.raises(PublishError, match="queue full"):
        await bus.publish(received(3))


async def test_dead_letters_can_be_requeued_once_the_cause_is_mended(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus()
    await bus.start()
    mended = asyncio.Event()

    def until_mended(delivery: Delivery[Message]) -> None:
        if not mended.is_set():
            raise Reject("the account's home is missing")

    recorder = Recorder(until_mended)
    await bus.consume("router", recorder)
    await bus.publish(received(11))
    await bus.publish(received(12))
    await wait_for_dead(bus, "router", 2)

    mended.set()
    assert await bus.requeue_dead_letters("router") == 2

    await recorder.wait_for(4)
    await asyncio.sleep(0.3)
    assert await bus.dead_letters("router") == []
    assert [d.attempt for d in recorder.deliveries[2:]] == [1, 1]
    assert sorted(d.message.model_dump()["sop_instance_uid"] for d in recorder.deliveries[2:]) == [
        "1.2.3.11",
        "1.2.3.12",
    ]
