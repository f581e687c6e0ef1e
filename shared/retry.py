"""Bounded, logged retries: the one loop every wait for a dependency goes through.

Waiting for the broker or the database at start-up, and riding out a database outage inside a
delivery, are the same thing: try, and on a failure that may pass, wait (doubling, up to a
ceiling), log the try, and try again, until a deadline; then give up with the last failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class GaveUp(Exception):
    """Every try within the deadline failed; ``last`` is the last failure."""

    def __init__(self, what: str, tries: int, last: BaseException) -> None:
        super().__init__(f"{what}: {tries} tries: {first_line(last)}")
        self.what = what
        self.tries = tries
        self.last = last


@dataclass(frozen=True)
class Patience:
    """How long to keep trying, and which failures are worth another try."""

    within: float  # seconds, from the first try
    transient: tuple[type[BaseException], ...]
    # Failures that look transient by type but never pass (an integrity error is a DBAPIError).
    permanent: tuple[type[BaseException], ...] = ()
    first_delay: float = 0.5
    max_delay: float = 10.0


async def retrying(what: str, work: Callable[[], Awaitable[T]], patience: Patience) -> T:
    """``work()``'s result, retried as ``patience`` says; :class:`GaveUp` past the deadline.

    A permanent failure, or one that is not transient, is raised as it is, at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience.within
    delay, tries = patience.first_delay, 1
    while True:
        try:
            return await work()
        except patience.permanent:
            raise
        except patience.transient as error:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.error("retry.gave_up", work=what, tries=tries, error=first_line(error))
                raise GaveUp(what, tries, error) from error
            log.warning(
                "retry.waiting", work=what, tries=tries, retry_in=delay, error=first_line(error)
            )
            await asyncio.sleep(min(delay, remaining))
            delay, tries = min(delay * 2, patience.max_delay), tries + 1


def first_line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
