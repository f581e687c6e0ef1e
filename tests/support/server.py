"""A store-server running inside the test process, on a free port, stopped by each test.

The services run on their own asyncio loop in a background thread, exactly as ``store-server
run`` starts them; tests talk to them over localhost with real DICOM peers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Collection, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from services.app import EMBEDDED, Running, start
from services.settings import Settings, load_settings
from shared.db.audit import Action, AuditEvent, history
from shared.log import configure_logging

T = TypeVar("T")
StartServer = Callable[..., "ServerUnderTest"]


def server_settings(
    data_dir: Path,
    port: int,
    *,
    bus_url: str = "memory://",
    exchange: str = "store-server",
    database_url: str | None = None,
    receiver: dict[str, Any] | None = None,
    bus: dict[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    return load_settings(
        None,
        {
            "data_dir": data_dir,
            "receiver": {"host": "127.0.0.1", "port": port, **(receiver or {})},
            "bus": {"url": bus_url, "exchange": exchange, "connect_timeout": 10, **(bus or {})},
            "database": {"url": database_url, "connect_timeout": 10},
            **sections,
        },
    )


class ServerUnderTest:
    """Context manager: the embedded services on a background loop."""

    def __init__(
        self, settings: Settings, *, roles: Collection[str] = EMBEDDED, index: bool = True
    ) -> None:
        self.settings = settings
        self._roles = roles
        self._index = index
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.running: Running | None = None

    def __enter__(self) -> ServerUnderTest:
        settings = self.settings
        configure_logging(
            settings.log_file, settings.log.level, accounts_root=settings.accounts_dir
        )
        self._thread.start()
        self.running = self.call(start(self.settings, self._roles, index=self._index))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._loop.is_closed():
            return  # stopped already (a test may stop its server to read what stop wrote)
        try:
            if self.running is not None:
                self.call(self.running.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def port(self) -> int:
        assert self.running is not None and self.running.receiver is not None
        return self.running.receiver.ports[0]

    @property
    def spool(self) -> list[Path]:
        return sorted(self.settings.spool_dir.glob("*.dcm"))

    def audit(self, action: str) -> list[AuditEvent]:
        """The audit trail's events of ``action``, oldest first, as the index holds them now."""
        assert self.running is not None

        async def read() -> list[AuditEvent]:
            assert self.running is not None
            async with self.running.index.connect() as connection:
                return await history(connection, action=Action(action))

        return self.call(read())

    def wait_for_audit(self, action: str, count: int = 1) -> list[AuditEvent]:
        """The events of ``action``, once there are ``count`` (reported ones come over the
        bus, a moment after the action)."""
        deadline = time.monotonic() + 30
        while len(found := self.audit(action)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} {action} audit events expected, found {found}")
            time.sleep(0.1)
        return found

    def log_events(self, event: str) -> list[dict[str, Any]]:
        assert self.settings.log_file is not None  # the tests' servers log to their file
        lines = self.settings.log_file.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [record for record in records if record.get("event") == event]
