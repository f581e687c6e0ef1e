"""The RabbitMQ bus (aio-pika): durable topology, persistent messages, confirms, manual acks.

The queues each consumer role gets are laid out in :mod:`shared.bus.amqp_queues`.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from shared.bus.amqp_queues import (
    ATTEMPT_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    declare_queues,
    origin,
    read_dead_letters,
    requeue_dead,
)
from shared.bus.base import (
    TOPOLOGY,
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
from shared.retry import GaveUp, Patience, retrying
from shared.settings import BusSettings
from shared.tasks import cancel_and_wait

log = get_logger(__name__)


class _AmqpSubscription:
    """One consumer of a role's queue: its own channel, consumer tag and deliveries in hand."""

    def __init__(self, bus: AmqpBus, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self._bus = bus
        self.channel = channel
        self.queue = queue
        self.tag: str | None = None
        self.collector: asyncio.Task[None] | None = None
        self.in_flight: set[asyncio.Task[None]] = set()

    def track(self, task: asyncio.Task[None]) -> None:
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def stop(self, *, drain: float = 0.0) -> None:
        # ``drain`` has nothing to wait for: the broker keeps what is queued, durably, and
        # gives what this consumer prefetched but did not take to another once it is gone.
        if self.tag is not None:
            try:
                await self.queue.cancel(self.tag)
            except (aiormq.exceptions.AMQPError, RuntimeError) as error:
                log.warning("bus.cancel_failed", queue=self.queue.name, error=str(error))
            self.tag = None
        await cancel_and_wait(self.collector)
        self.collector = None
        if self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)
        with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError):
            await self.channel.close()
        self._bus.forget(self)


class AmqpBus:
    """The bus between processes, on RabbitMQ."""

    def __init__(self, settings: BusSettings) -> None:
        self._settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._subscriptions: list[_AmqpSubscription] = []

    @property
    def durable(self) -> bool:
        return True

    def problem(self) -> str | None:
        if self._connection is None:
            return "not connected to the broker"
        # A robust connection is never "closed" while it reconnects; its ``connected`` event is
        # what tells a working connection from one waiting for the broker to come back.
        if self._connection.is_closed or not self._connection.connected.is_set():
            return "broker connection lost (reconnecting)"
        return None

    def queue_name(self, role: str) -> str:
        return f"{self._settings.exchange}.{role}"

    async def start(self) -> None:
        self._connection = await self._connect()
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for consumer in TOPOLOGY:
            await self._declare_queues(self._channel, consumer.role)
            queue = await self._channel.get_queue(self.queue_name(consumer.role), ensure=False)
            for routing_key in consumer.routing_keys:
                await queue.bind(self._exchange, routing_key)

    async def _connect(self) -> AbstractRobustConnection:
        """Wait for the broker a bounded time, logging each failed try."""
        patience = Patience(
            within=self._settings.connect_timeout,
            transient=(TimeoutError, OSError, aiormq.exceptions.AMQPError),
        )
        try:
            return await retrying(
                "bus.connect",
                lambda: aio_pika.connect_robust(self._settings.url, timeout=10),
                patience,
            )
        except GaveUp as gave_up:
            raise ConnectionError(
                f"bus.url: cannot reach the broker within "
                f"{self._settings.connect_timeout:.0f}s: {gave_up.last}"
            ) from gave_up

    async def _declare_queues(self, channel: AbstractChannel, role: str) -> AbstractQueue:
        return await declare_queues(channel, self.queue_name(role))

    async def publish(self, message: Message) -> None:
        await self.publish_raw(message.kind, message.to_bytes())

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        if self._exchange is None:
            raise PublishError("the bus is not connected")
        await self._confirmed(
            self._exchange,
            routing_key,
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                type=routing_key,
            ),
        )

    async def _confirmed(
        self, exchange: AbstractExchange, routing_key: str, message: aio_pika.Message
    ) -> None:
        try:
            await exchange.publish(
                message,
                routing_key,
                mandatory=True,
                timeout=self._settings.publish_timeout,
            )
        # Whatever stood between us and the broker's ack (a return, a nack, a closed channel,
        # a reconnect in progress, a timeout), the message is not known to be published.
        except (TimeoutError, aiormq.exceptions.AMQPError, RuntimeError, OSError) as e:
            raise PublishError(f"{routing_key}: not confirmed: {type(e).__name__}: {e}") from e

    async def consume(
        self, role: str, handler: Handler[Message], *, prefetch: int | None = None
    ) -> _AmqpSubscription:
        subscription = await self._subscribe(role, prefetch or self._settings.prefetch)

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                subscription.track(task)
            await self._deliver(subscription.channel, role, handler, incoming)

        subscription.tag = await subscription.queue.consume(on_message, no_ack=False)
        return subscription

    async def _subscribe(self, role: str, prefetch: int) -> _AmqpSubscription:
        consumer_for(role)
        if self._connection is None:
            raise RuntimeError("start() the bus before consuming")
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        queue = await self._declare_queues(channel, role)
        subscription = _AmqpSubscription(self, channel, queue)
        self._subscriptions.append(subscription)
        return subscription

    def forget(self, subscription: _AmqpSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def _deliver(
        self,
        channel: AbstractChannel,
        role: str,
        handler: Handler[Message],
        incoming: AbstractIncomingMessage,
    ) -> None:
        routing_key, attempt = origin(incoming)
        verdict = await dispatch(
            handler,
            role=role,
            routing_key=routing_key,
            body=incoming.body,
            attempt=attempt,
            max_attempts=self._settings.max_attempts,
        )
        await self._settle(channel, role, incoming, verdict)

    async def consume_batch(
        self,
        role: str,
        routes: BatchRoutes,
        *,
        max_batch: int,
        max_wait: float,
        prefetch: int | None = None,
    ) -> _AmqpSubscription:
        # A prefetch below the batch size would cap every batch at the prefetch.
        subscription = await self._subscribe(
            role, max(prefetch or self._settings.prefetch, max_batch)
        )
        channel = subscription.channel
        arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            arrived.put_nowait(incoming)

        async def settle(incoming: AbstractIncomingMessage, verdict: Verdict) -> None:
            await self._settle(channel, role, incoming, verdict)

        bus = Settle[AbstractIncomingMessage](_as_sent, settle)

        async def run(batch: list[AbstractIncomingMessage]) -> None:
            if not batch:
                return
            task = asyncio.create_task(
                deliver_batch(
                    routes, batch, bus, role=role, max_attempts=self._settings.max_attempts
                )
            )
            subscription.track(task)
            # Shielded: stopping the consumer lets the batch in hand finish.
            await asyncio.shield(task)

        subscription.tag = await subscription.queue.consume(on_message, no_ack=False)
        subscription.collector = asyncio.create_task(
            run_batches(arrived, max_batch, max_wait, run), name=role
        )
        return subscription

    async def _settle(
        self,
        channel: AbstractChannel,
        role: str,
        incoming: AbstractIncomingMessage,
        verdict: Verdict,
    ) -> None:
        """Ack, or forward to the retry or dead-letter queue and then ack."""
        routing_key, attempt = origin(incoming)
        if verdict.action is not Action.ACK:
            name = self.queue_name(role)
            delay = backoff_seconds(
                attempt, self._settings.retry_backoff, self._settings.retry_backoff_max
            )
            retry = verdict.action is Action.RETRY
            forward = aio_pika.Message(
                incoming.body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=incoming.content_type,
                type=routing_key,
                expiration=delay if retry else None,
                headers={
                    ATTEMPT_HEADER: attempt + 1 if retry else attempt,
                    ROUTING_KEY_HEADER: routing_key,
                    REASON_HEADER: verdict.reason[:2000],
                },
            )
            target = f"{name}.retry" if retry else f"{name}.dead"
            try:
                await self._confirmed(channel.default_exchange, target, forward)
            except PublishError as error:
                # Not acked: the broker delivers it again, nothing is lost.
                log.error("bus.forward_failed", role=role, target=target, error=str(error))
                await incoming.nack(requeue=True)
                return
        try:
            await incoming.ack()
        except (aiormq.exceptions.AMQPError, RuntimeError) as error:
            # The channel went away with the delivery unacked: the broker delivers it again
            # and the consumer's idempotence absorbs it.
            log.warning("bus.ack_failed", role=role, error=str(error))

    async def dead_letters(self, role: str) -> list[DeadLetter]:
        if self._connection is None:
            raise RuntimeError("start() the bus first")
        channel = await self._connection.channel()
        try:
            return await read_dead_letters(channel, self.queue_name(role))
        finally:
            await channel.close()

    async def requeue_dead_letters(self, role: str) -> int:
        if self._connection is None:
            raise RuntimeError("start() the bus first")
        channel = await self._connection.channel(publisher_confirms=True)
        try:
            return await requeue_dead(
                channel, self.queue_name(role), self._settings.publish_timeout
            )
        finally:
            await channel.close()

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.stop()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._exchange = None


def _as_sent(incoming: AbstractIncomingMessage) -> tuple[str, bytes, int]:
    routing_key, attempt = origin(incoming)
    return routing_key, incoming.body, attempt
