"""What every consumer of the bus does with a database outage: waits it out, then retries.

The database layer says only that the database is away (:class:`DatabaseUnavailable`); a
consumer rides that out within the delivery (:func:`shared.db.patience.patiently`), and past
its bound hands the delivery back to the bus as a :class:`Retry`, which costs one attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.bus import Retry
from shared.db.patience import DatabaseUnavailable, patiently

T = TypeVar("T")


async def riding_out_outages(what: str, work: Callable[[], Awaitable[T]], within: float) -> T:
    """``work()``, waiting out a database outage for ``within`` s, then a :class:`Retry`."""
    try:
        return await patiently(what, work, within)
    except DatabaseUnavailable as error:
        raise Retry(str(error)) from error
