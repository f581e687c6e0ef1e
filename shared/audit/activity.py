"""Application activity for the audit trail: which process started or stopped, where."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.audit import Action, AuditEvent, record
from shared.log import get_logger

log = get_logger(__name__)


def process_identity(roles: Iterable[str]) -> dict[str, object]:
    """What names this process in an ``application_started`` or ``application_stopped``."""
    try:
        release = version("store-server")
    except PackageNotFoundError:
        release = "unknown"
    return {
        "roles": sorted(roles),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": release,
    }


async def record_activity(engine: AsyncEngine, action: Action, roles: Iterable[str]) -> None:
    """Record that this process's ``roles`` started or stopped; an index that cannot take it
    costs the event, and the log says so (a process must stop even with its database gone)."""
    roles = sorted(roles)
    event = AuditEvent(action, "+".join(roles)[:32], detail=process_identity(roles))
    try:
        async with engine.begin() as connection:
            await record(connection, [event])
    except (OSError, DBAPIError, OperationalError) as error:
        log.warning("audit.activity_not_recorded", action=action.value, error=str(error))
