"""Riding out a database outage inside one delivery, instead of spending the bus's attempts.

A restart of PostgreSQL takes seconds to a minute; a service that handed every delivery back
to the bus meanwhile would exhaust their attempts and fill the dead-letter queue with work
that only had to wait. Past the bound, the delivery goes back to the bus as :class:`Retry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa

from shared.bus import Retry
from shared.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")

# The database, or the way to it, is away. Integrity and data errors are not outages: they
# are bugs or bad values, and go to the bus's bounded retries at once.
NOT_TRANSIENT = (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError)
TRANSIENT = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DBAPIError,
    OSError,  # connection refused or reset, name resolution: asyncpg raises them as they are
    TimeoutError,
)


async def patiently(what: str, work: Callable[[], Awaitable[T]], within: float) -> T:
    """Run ``work``, retrying with backoff while the database is away, for ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay, tries = 0.2, 1
    while True:
        try:
            return await work()
        except NOT_TRANSIENT:
            raise
        except TRANSIENT as error:
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if loop.time() + delay > deadline:
                log.error("database.gave_up", work=what, tries=tries, error=reason)
                raise Retry(f"database unavailable: {reason}") from error
            log.warning("database.retry", work=what, tries=tries, retry_in=delay, error=reason)
            await asyncio.sleep(delay)
            delay, tries = min(delay * 2, 5.0), tries + 1
