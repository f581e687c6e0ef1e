"""A running process's heartbeat: a small file it rewrites while it works, which health reads.

A health check must say whether *that process* is alive and working, not only whether its
broker and database answer. Each server process keeps ``<data_dir>/heartbeats/<role>@<host>``
(with ``.<instance>`` when several of a role run on one host, as systemd's router@N units do),
rewritten every few seconds with whether it is working and, if not, why (its broker connection
gone, its consumer stopped). ``store-server health`` reads it: a beat that is missing, stale,
from a process that is gone, or that reports a problem is unhealthy. In a container the health
check runs beside the process, on the same host name and in the same process namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.log import get_logger
from shared.tasks import cancel_and_wait

log = get_logger(__name__)

HEARTBEAT_DIR = "heartbeats"
INTERVAL = 5.0  # seconds between beats
LATE = 3  # beats missed before a process counts as stuck

# Why the process is not working now, or None when it is.
Problem = Callable[[], str | None]


def beat_path(data_dir: Path, role: str, instance: str = "") -> Path:
    name = f"{role}@{socket.gethostname()}" + (f".{instance}" if instance else "")
    return data_dir / HEARTBEAT_DIR / name


@dataclass(frozen=True)
class Beat:
    pid: int
    beat_at: datetime
    interval: float
    problem: str | None


class Heartbeat:
    """Rewrites the process's heartbeat file every ``interval`` seconds until stopped."""

    def __init__(self, path: Path, problem: Problem, interval: float = INTERVAL) -> None:
        self._path = path
        self._problem = problem
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
        await self._beat()
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        """Stop beating and remove the file: a stopped process is not running, not stuck."""
        await cancel_and_wait(self._task)
        self._task = None
        self._path.unlink(missing_ok=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat()
            except OSError as error:  # a full or read-only disk: health will see it stale
                log.warning("heartbeat.not_written", path=str(self._path), error=str(error))

    async def _beat(self) -> None:
        body = json.dumps(
            {
                "pid": os.getpid(),
                "beat_at": datetime.now(UTC).isoformat(),
                "interval": self._interval,
                "problem": self._problem(),
            }
        ).encode()
        await asyncio.to_thread(_replace, self._path, body)


def _replace(path: Path, body: bytes) -> None:
    # Not fsynced: a beat lost in a crash is a beat the crash would have stopped anyway.
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(body)
    os.replace(partial, path)


def read_beat(path: Path) -> Beat | None:
    try:
        fields = json.loads(path.read_bytes())
        return Beat(
            pid=int(fields["pid"]),
            beat_at=datetime.fromisoformat(fields["beat_at"]),
            interval=float(fields["interval"]),
            problem=fields.get("problem"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def judge(beat: Beat | None, now: datetime) -> tuple[bool, str]:
    """Whether the process that wrote ``beat`` is alive and working, and in what words."""
    if beat is None:
        return False, "no heartbeat: the process is not running"
    if not _alive(beat.pid):
        return False, f"process {beat.pid} is gone"
    age = (now - beat.beat_at).total_seconds()
    if age > LATE * beat.interval:
        return False, f"process {beat.pid} last beat {age:.0f} s ago: it is stuck"
    if beat.problem:
        return False, f"process {beat.pid} is not working: {beat.problem}"
    return True, f"process {beat.pid} working, last beat {age:.1f} s ago"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
