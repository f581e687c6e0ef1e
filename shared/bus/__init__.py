"""The message bus: one interface, an in-process and a RabbitMQ implementation, chosen by URL."""

from __future__ import annotations

from shared.bus.base import (
    TOPOLOGY,
    BatchHandler,
    BatchRoutes,
    Bus,
    DeadLetter,
    Delivery,
    Handler,
    Publisher,
    PublishError,
    Reject,
    Retry,
    Routes,
    Subscription,
)
from shared.settings import BusSettings

__all__ = [
    "TOPOLOGY",
    "BatchHandler",
    "BatchRoutes",
    "Bus",
    "DeadLetter",
    "Delivery",
    "Handler",
    "PublishError",
    "Publisher",
    "Reject",
    "Retry",
    "Routes",
    "Subscription",
    "open_bus",
]


def open_bus(settings: BusSettings) -> Bus:
    """The bus for ``settings.url``; call ``await bus.start()`` inside the running loop."""
    if settings.url.startswith("memory://"):
        from shared.bus.memory import MemoryBus

        return MemoryBus(settings)
    from shared.bus.amqp import AmqpBus

    return AmqpBus(settings)
