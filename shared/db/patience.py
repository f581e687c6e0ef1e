"""Riding out a database outage, instead of failing the work at the first lost connection.

A restart of PostgreSQL takes seconds to a minute; a consumer that handed every delivery back
to the bus meanwhile would exhaust their attempts and fill the dead-letter queue with work
that only had to wait. Past the bound, :class:`DatabaseUnavailable` says the database is away;
what that means for the work (a retry later, for a consumer) is the caller's to say.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa

from shared.retry import GaveUp, Patience, retrying

T = TypeVar("T")

# The database, or the way to it, is away. Integrity and data errors are not outages: they
# are bugs or bad values, raised at once.
NOT_TRANSIENT = (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError)
TRANSIENT = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DBAPIError,
    OSError,  # connection refused or reset, name resolution: asyncpg raises them as they are
    TimeoutError,
)


class DatabaseUnavailable(Exception):
    """The database stayed away longer than the work could wait."""


async def patiently(what: str, work: Callable[[], Awaitable[T]], within: float) -> T:
    """Run ``work``, retrying with backoff while the database is away, for ``within`` s."""
    patience = Patience(within, TRANSIENT, NOT_TRANSIENT, first_delay=0.2, max_delay=5.0)
    try:
        return await retrying(what, work, patience)
    except GaveUp as gave_up:
        raise DatabaseUnavailable(f"database unavailable: {gave_up.last}") from gave_up
