"""Run a handler on one delivery and turn what happened into a bus action.

Both bus implementations call :func:`dispatch` (and :mod:`shared.bus.batch` its two halves,
:func:`decode_delivery` and :func:`judge`), so ack, retry and dead-letter decisions are made in
one place and mean the same thing on either backend.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from structlog.contextvars import bound_contextvars

from shared.bus.base import Delivery, Handler, Reject, Retry
from shared.log import get_logger
from shared.messages import Message, MessageError, decode

log = get_logger(__name__)


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""


async def dispatch(
    handler: Handler[Message],
    *,
    role: str,
    routing_key: str,
    body: bytes,
    attempt: int,
    max_attempts: int,
) -> Verdict:
    """Decode the body, run the handler, and say what to do with the delivery."""
    decoded = decode_delivery(role=role, routing_key=routing_key, body=body, attempt=attempt)
    if isinstance(decoded, Verdict):
        return decoded
    return await judge(handler, decoded, role=role, max_attempts=max_attempts)


def decode_delivery(
    *, role: str, routing_key: str, body: bytes, attempt: int
) -> Delivery[Message] | Verdict:
    """The delivery, or the dead-letter verdict for a body that is not a valid message."""
    try:
        message = decode(routing_key, body)
    except MessageError as error:
        log.error("message.poison", role=role, routing_key=routing_key, error=str(error))
        return Verdict(Action.DEAD_LETTER, str(error))
    return Delivery(message=message, routing_key=routing_key, attempt=attempt)


async def judge(
    handler: Handler[Message], delivery: Delivery[Message], *, role: str, max_attempts: int
) -> Verdict:
    """Run the handler on one decoded delivery and turn its outcome into a verdict."""
    context: dict[str, object] = {
        "role": role,
        "routing_key": delivery.routing_key,
        "attempt": delivery.attempt,
    }
    named = {
        key: getattr(delivery.message, key)
        for key in ("sop_instance_uid", "study_instance_uid")
        if getattr(delivery.message, key, None)
    }
    context.update(named)
    try:
        # Every line logged while handling it, a library's included, names what it concerns.
        with bound_contextvars(**named):
            await handler(delivery)
    except Reject as error:
        log.error("message.rejected", reason=str(error), **context)
        return Verdict(Action.DEAD_LETTER, f"rejected: {error}")
    except Retry as error:
        reason = str(error)
    except Exception as error:  # a bug or an unforeseen failure: bounded retries, then dead
        log.exception("message.handler_failed", **context)
        reason = f"{type(error).__name__}: {error}"
    else:
        return Verdict(Action.ACK)
    if delivery.attempt >= max_attempts:
        log.error("message.gave_up", reason=reason, max_attempts=max_attempts, **context)
        return Verdict(Action.DEAD_LETTER, f"gave up after {delivery.attempt} attempts: {reason}")
    log.warning("message.retry", reason=reason, **context)
    return Verdict(Action.RETRY, reason)
