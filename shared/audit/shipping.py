"""The audit trail's copies outside the index: each event, in the order the index numbers
them, appended as a JSON line to the audit log and, when one is configured, sent to a syslog
collector in the DICOM audit message format.

The index is the record; the copies follow it from a position kept per copy beside the audit
log (``audit.log.<copy>.position``), so that a stop, a crash or a collector that is away
delays a copy but loses nothing: the copy resumes where it stopped. A copy is written before
its position is (at least once: after a crash in between, the last events may appear twice;
each carries its ``id``). One process of a server ships at a time (a lock file beside the
audit log); others wait for it.

On PostgreSQL, numbers are handed out before transactions commit, so an event may become
visible after a higher-numbered one: a number skipped is looked for again for
:data:`GAP_WAIT` seconds (a transaction still committing), then given up (a rolled-back one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import audit_events
from shared.log import get_logger

log = get_logger(__name__)

BATCH = 500  # events read and shipped at once
GAP_WAIT = 120.0  # seconds a skipped number is looked for again
MAX_GAPS = 1000  # skipped numbers looked for again, at most


class Copy(Protocol):
    """Where the trail is copied to."""

    name: str

    async def ship(self, events: Sequence[dict[str, Any]]) -> None:
        """Take ``events`` (rows as :func:`as_json` gives them), in order; raise on failure."""
        ...

    async def close(self) -> None: ...


def as_json(row: Any) -> dict[str, Any]:
    """An audit row as the audit log has it."""
    return {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "event": row["event"],
        "service": row["service"],
        "sop_instance_uid": row["sop_instance_uid"],
        "study_instance_uid": row["study_instance_uid"],
        "detail": row["detail"] or {},
    }


class JsonLines:
    """The audit log: one JSON object per line, appended and fsynced; a rotated log (by
    logrotate's ``create``) is simply started anew."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self._path = path

    async def ship(self, events: Sequence[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in events)
        await asyncio.to_thread(self._append, text.encode())

    def _append(self, data: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    async def close(self) -> None:
        pass


@dataclass
class Position:
    """How far a copy has got: the highest number shipped, and the lower numbers not seen
    yet (to the monotonic time they were first missed)."""

    last_id: int = 0
    gaps: dict[int, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Position:
        try:
            saved = json.loads(path.read_text())
            return cls(int(saved["last_id"]), {int(k): time.monotonic() for k in saved["gaps"]})
        except FileNotFoundError:
            return cls()
        except (ValueError, KeyError, TypeError) as error:
            # A damaged position: started again from the first event (duplicates, no loss).
            log.warning("audit.position_unreadable", path=str(path), error=str(error))
            return cls()

    def save(self, path: Path) -> None:
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(json.dumps({"last_id": self.last_id, "gaps": sorted(self.gaps)}))
        os.replace(scratch, path)


class AuditShipper:
    """Copies the index's audit trail to ``copies``, every ``poll_interval`` seconds."""

    def __init__(
        self, engine: AsyncEngine, copies: list[Copy], log_file: Path, poll_interval: float
    ) -> None:
        self._engine = engine
        self._copies = copies
        self._log_file = log_file
        self._poll = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._lock: int | None = None
        self.trouble: str | None = None

    def _position_path(self, copy: Copy) -> Path:
        return self._log_file.with_name(f"{self._log_file.name}.{copy.name}.position")

    async def start(self) -> None:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run())
        log.info(
            "audit.shipping",
            log_file=str(self._log_file),
            copies=[copy.name for copy in self._copies],
        )

    def problem(self) -> str | None:
        return None  # a copy that lags is reported in the log; the process keeps working

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                await self.ship_all()  # what the stopping services recorded last
            os.close(self._lock)
            self._lock = None
        for copy in self._copies:
            await copy.close()

    async def _run(self) -> None:
        while True:
            if self._lock is None:
                self._lock = self._take_lock()
            if self._lock is not None:
                await self.ship_all()
            await asyncio.sleep(self._poll)

    def _take_lock(self) -> int | None:
        path = self._log_file.with_name(self._log_file.name + ".lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return descriptor

    async def ship_all(self) -> int:
        """Bring every copy up to the index; how many events were shipped in all."""
        shipped = 0
        for copy in self._copies:
            try:
                shipped += await self._catch_up(copy)
            except (OSError, DBAPIError, OperationalError) as error:
                self._complain(copy, str(error))
            except Exception as error:  # a collector's own error (SyslogError), kept apart
                self._complain(copy, f"{type(error).__name__}: {error}")
        return shipped

    def _complain(self, copy: Copy, reason: str) -> None:
        trouble = f"{copy.name}: {reason}"
        if trouble != self.trouble:  # once per trouble, not once per poll
            log.warning("audit.copy_behind", copy=copy.name, error=reason)
        self.trouble = trouble

    async def _catch_up(self, copy: Copy) -> int:
        path = self._position_path(copy)
        position = await asyncio.to_thread(Position.load, path)
        shipped = 0
        while True:
            rows = await self._rows(position)
            if not rows:
                return shipped
            await copy.ship(rows)
            _advance(position, [row["id"] for row in rows])
            await asyncio.to_thread(position.save, path)
            shipped += len(rows)
            if self.trouble and self.trouble.startswith(f"{copy.name}:"):
                log.info("audit.copy_resumed", copy=copy.name)
                self.trouble = None

    async def _rows(self, position: Position) -> list[dict[str, Any]]:
        now = time.monotonic()
        for missing in [n for n, seen in position.gaps.items() if now - seen > GAP_WAIT]:
            del position.gaps[missing]
        query = sa.select(audit_events).order_by(audit_events.c.id)
        newer = audit_events.c.id > position.last_id
        if position.gaps:
            newer = sa.or_(newer, audit_events.c.id.in_(sorted(position.gaps)))
        async with self._engine.connect() as connection:
            result = await connection.execute(query.where(newer).limit(BATCH))
            return [as_json(row) for row in result.mappings()]


def _advance(position: Position, shipped: list[int]) -> None:
    """Move ``position`` past ``shipped``: numbers skipped on the way become gaps."""
    now = time.monotonic()
    for number in shipped:
        position.gaps.pop(number, None)
    highest = max(shipped)
    if highest > position.last_id:
        taken = set(shipped)
        # A jump of more than MAX_GAPS numbers (a restored index) is not waited for.
        for number in range(max(position.last_id + 1, highest - MAX_GAPS), highest):
            if number not in taken:
                position.gaps.setdefault(number, now)
        position.last_id = highest
