"""The indexer's batch handler: read the filed files, then write the batch in one transaction.

Outcomes per instance, decided here and recorded in docs/decisions.md (Indexer):

- the file reads: it is indexed;
- the file is gone, and the index already holds this instance from a message at least as
  recent: the message is stale (the instance was replaced again, or re-filed), and is skipped;
- the file is gone otherwise: :class:`Retry` (bounded by ``bus.max_attempts``, then the dead
  letter queue), since a file being moved may reappear and an operator must see one that does
  not;
- the file is not DICOM, or the path leaves the accounts root: :class:`Reject`.

A database that cannot be reached is waited for (``indexer.database_retry_seconds``, with
backoff, logged) inside the handler, so an outage costs no delivery attempts; past that bound
the batch goes back to the bus as a :class:`Retry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.contextvars import bound_contextvars

from services.indexer.header import HeaderError, IndexedInstance, read_instance
from services.indexer.settings import IndexerSettings
from services.indexer.store import BatchOutcome, index_batch
from shared.bus import Delivery, Reject, Retry
from shared.consumers import riding_out_outages
from shared.db.schema import instances
from shared.log import get_logger
from shared.messages import InstanceFiled
from shared.settings import DataPaths

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Reading:
    """What reading the files of a batch gave: instances to index, and files that are gone."""

    indexed: list[IndexedInstance]
    missing: list[InstanceFiled]
    unreadable: list[tuple[InstanceFiled, str]]


class Indexing:
    """Reads filed instances and writes them to the index, riding out database outages."""

    def __init__(self, settings: IndexerSettings, paths: DataPaths, engine: AsyncEngine) -> None:
        self._settings = settings
        self._engine = engine
        self._root = paths.accounts.resolve()

    async def handle(self, deliveries: list[Delivery[InstanceFiled]]) -> None:
        """The bus's batch handler."""
        messages = [delivery.message for delivery in deliveries]
        reading = await asyncio.to_thread(self.read, messages)
        if reading.unreadable:
            message, reason = reading.unreadable[0]
            raise Reject(reason)
        if reading.missing:
            stale = await self.indexed_since(reading.missing)
            for message in reading.missing:
                if message.sop_instance_uid in stale:
                    log.info(
                        "index.stale_message_skipped",
                        sop_instance_uid=message.sop_instance_uid,
                        path=message.path,
                    )
            gone = [m for m in reading.missing if m.sop_instance_uid not in stale]
            if gone:
                raise Retry(f"file missing: {gone[0].path}")
        if reading.indexed:
            await self.write(reading.indexed)

    def read(self, messages: Sequence[InstanceFiled]) -> Reading:
        """Read each message's file (blocking: run in a thread)."""
        reading = Reading([], [], [])
        for message in messages:
            path = (self._root / message.path).resolve()
            if not path.is_relative_to(self._root):
                reading.unreadable.append((message, f"path leaves the accounts root: {path}"))
                continue
            try:
                with bound_contextvars(
                    sop_instance_uid=message.sop_instance_uid, path=message.path
                ):
                    reading.indexed.append(read_instance(path, message))
            except FileNotFoundError:
                log.warning(
                    "index.file_missing", sop_instance_uid=message.sop_instance_uid, path=str(path)
                )
                reading.missing.append(message)
            except (HeaderError, IsADirectoryError, PermissionError) as error:
                log.error(
                    "index.file_unreadable",
                    sop_instance_uid=message.sop_instance_uid,
                    error=str(error),
                )
                reading.unreadable.append((message, str(error)))
        return reading

    async def indexed_since(self, messages: Sequence[InstanceFiled]) -> set[str]:
        """The SOP Instance UIDs the index holds from a message at least as recent as these."""
        sent = {m.sop_instance_uid: m.received_at for m in messages}

        async def query() -> set[str]:
            async with self._engine.connect() as connection:
                rows = await connection.execute(
                    sa.select(instances.c.sop_instance_uid, instances.c.received_at).where(
                        instances.c.sop_instance_uid.in_(sent)
                    )
                )
                return {uid for uid, at in rows if at >= sent[uid]}

        return await self.patiently("index.lookup", query)

    async def write(self, batch: list[IndexedInstance]) -> BatchOutcome:
        async def transaction() -> BatchOutcome:
            async with self._engine.begin() as connection:
                return await index_batch(connection, batch)

        outcome = await self.patiently("index.batch", transaction)
        log.info(
            "index.batch_written",
            size=len(batch),
            inserted=outcome.inserted,
            updated=outcome.updated,
            unchanged=outcome.unchanged,
            conflicts=outcome.conflicts,
        )
        return outcome

    async def patiently(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work``, riding out a database outage for ``indexer.database_retry_seconds``."""
        return await riding_out_outages(what, work, self._settings.database_retry_seconds)
