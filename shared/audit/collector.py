"""The audit trail's copy at a syslog collector (an IHE ATNA audit record repository): each
event that the DICOM audit message format has a message for, as an RFC 5424 message."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.audit.atna import audit_message
from shared.audit.syslog import SyslogSender, syslog_message
from shared.db.audit import Action, AuditEvent
from shared.settings import SyslogSettings


class Syslog:
    """Sends the trail's events to a collector, in order."""

    name = "syslog"

    def __init__(
        self,
        sender: SyslogSender,
        source_id: str,
        site: str | None,
        app_name: str,
        instance_uids: bool = True,
    ) -> None:
        self._sender = sender
        self._instance_uids = instance_uids
        self._source_id = source_id
        self._site = site
        self._app_name = app_name
        self._hostname = socket.gethostname()

    async def ship(self, events: Sequence[dict[str, Any]]) -> None:
        messages = []
        for row in events:
            event = _event(row)
            xml = audit_message(
                event,
                source_id=self._source_id,
                site=self._site,
                instance_uids=self._instance_uids,
            )
            if xml is not None:
                messages.append(
                    syslog_message(
                        xml,
                        at=event.at,
                        hostname=self._hostname,
                        app_name=self._app_name,
                        procid=str(os.getpid()),
                        severity=_severity(event),
                    )
                )
        if messages:
            await self._sender.send(messages)

    async def close(self) -> None:
        await self._sender.close()


def syslog_copy(settings: SyslogSettings, source_id: str, site: str | None) -> Syslog | None:
    """The collector's copy as ``settings`` configure it; None without a collector."""
    if settings.host is None:
        return None
    context: ssl.SSLContext | None = None
    if settings.transport == "tls":
        context = ssl.create_default_context(cafile=settings.ca)
        if settings.cert is not None:
            context.load_cert_chain(settings.cert, settings.key)
    sender = SyslogSender(settings.host, settings.port, settings.transport, context)
    # A large association's instance UIDs do not fit in a datagram: over UDP, counts only.
    whole = settings.transport != "udp"
    return Syslog(sender, source_id, site, settings.app_name, instance_uids=whole)


# Warning (4) for what went wrong or was refused, notice (5) for the rest.
_WARNINGS = frozenset(
    {Action.SECURITY_ALERT, Action.ASSOCIATION_REFUSED, Action.REFUSED, Action.QUARANTINED}
)


def _severity(event: AuditEvent) -> int:
    failed = event.detail.get("failed") or event.detail.get("status")
    return 4 if event.action in _WARNINGS or failed else 5


def _event(row: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        action=Action(row["event"]),
        service=row["service"],
        sop_instance_uid=row["sop_instance_uid"],
        study_instance_uid=row["study_instance_uid"],
        detail=row["detail"],
        at=datetime.fromisoformat(row["at"]),
    )
