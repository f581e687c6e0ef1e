"""The receiver's audit events, reported over the bus (it has no database; the router records
them): associations accepted and refused, the instances each association brought (one
``transferred`` event per association and patient), queries, retrievals, security alerts.

Reports go out in the background, so that no association waits for the broker's confirm; a
bus that cannot take one costs that event, and the log says which. Security alerts are
limited per peer address and kind to one per :data:`ALERT_INTERVAL`, with the number held
back told in the next, so that a peer sending garbage in a loop cannot flood the trail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydicom.charset import convert_encodings
from pydicom.valuerep import PersonName

from shared.bus import PublishError
from shared.dicom.encoding import Captured
from shared.log import get_logger
from shared.messages import AuditReported, Message, ReportedAction

log = get_logger("services.receiver")

ALERT_INTERVAL = 60.0  # seconds between two security alerts of one kind from one address
DRAIN_SECONDS = 10.0
SERVICE = "receiver"
_PATIENT_ID = 0x00100020
_PATIENT_NAME = 0x00100010
_CHARSET = 0x00080005


class AuditReporter:
    """Publishes audit events without holding up the caller."""

    def __init__(self, publish: Callable[[Message], Awaitable[None]]) -> None:
        self._publish = publish
        self._pending: set[asyncio.Task[None]] = set()
        self._alerted: dict[tuple[str, str], tuple[float, int]] = {}

    def report(
        self,
        action: ReportedAction,
        detail: dict[str, Any],
        *,
        study_instance_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        message = AuditReported(
            action=action,
            service=SERVICE,
            at=datetime.now(UTC),
            study_instance_uid=study_instance_uid,
            sop_instance_uid=sop_instance_uid,
            detail=detail,
        )
        task = asyncio.get_running_loop().create_task(self._send(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def alert(self, alert: str, reason: str, peer_address: str, **detail: Any) -> None:
        """A security alert, unless one of this kind from this address went out within
        :data:`ALERT_INTERVAL`; those held back are counted in the next one."""
        now = time.monotonic()
        last, held = self._alerted.get((peer_address, alert), (-ALERT_INTERVAL, 0))
        if now - last < ALERT_INTERVAL:
            self._alerted[(peer_address, alert)] = (last, held + 1)
            return
        if len(self._alerted) > 10_000:  # addresses seen long ago: forgotten
            self._alerted = {
                key: value
                for key, value in self._alerted.items()
                if now - value[0] < ALERT_INTERVAL
            }
        self._alerted[(peer_address, alert)] = (now, 0)
        fields = {"alert": alert, "reason": reason, "peer_address": peer_address, **detail}
        if held:
            fields["held_back"] = held
        self.report("security_alert", fields)

    async def _send(self, message: AuditReported) -> None:
        try:
            await self._publish(message)
        except PublishError as error:
            log.warning("audit.not_reported", action=message.action, error=str(error))

    async def drain(self) -> None:
        """Wait for the reports in flight (at stop, before the bus closes), at most
        :data:`DRAIN_SECONDS`."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=DRAIN_SECONDS)


@dataclass
class _Patient:
    name: str
    studies: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    count: int = 0


class AssociationAudit:
    """One association's part of the trail: the instances it stored, by patient, reported as
    one ``transferred`` event per patient when it ends; its queries and retrievals as they
    happen."""

    def __init__(self, reporter: AuditReporter, peer: dict[str, Any]) -> None:
        self.reporter = reporter
        self.peer = peer  # calling_ae, called_ae, peer_address, peer_port
        self._patients: dict[str, _Patient] = {}

    def stored(
        self, patient: tuple[str, str], study_uid: str, sop_class_uid: str, sop_uid: str
    ) -> None:
        patient_id, name = patient
        held = self._patients.setdefault(patient_id, _Patient(name))
        instance = {"sop_class_uid": sop_class_uid, "sop_instance_uid": sop_uid}
        held.studies.setdefault(study_uid, []).append(instance)
        held.count += 1

    def report(self, action: ReportedAction, detail: dict[str, Any], **keys: Any) -> None:
        self.reporter.report(action, {**self.peer, **detail}, **keys)

    def ended(self) -> None:
        """The association is over: a ``transferred`` event per patient it brought."""
        for patient_id, held in self._patients.items():
            studies = list(held.studies)
            self.report(
                "transferred",
                {
                    "patient_id": patient_id,
                    "patient_name": held.name,
                    "count": held.count,
                    "studies": [
                        {"study_instance_uid": uid, "instances": instances}
                        for uid, instances in held.studies.items()
                    ],
                },
                study_instance_uid=studies[0] if len(studies) == 1 else None,
            )
        self._patients.clear()


def patient_of(captured: Captured | None) -> tuple[str, str]:
    """The Patient ID and Patient Name a data set's top level carries, as text ('' when
    absent, or when they were not captured)."""
    if captured is None:
        return "", ""
    elements = captured.elements
    charsets = _text(elements.get(_CHARSET, (None, b""))[1], "ascii").split("\\")
    patient_id = _text(elements.get(_PATIENT_ID, (None, b""))[1], "latin-1")
    raw_name = elements.get(_PATIENT_NAME, (None, b""))[1].rstrip(b" \x00")
    try:
        name = str(PersonName(raw_name, convert_encodings([c.strip() for c in charsets])))
    except Exception:  # an unknown or broken character set: the bytes as Latin-1
        name = raw_name.decode("latin-1")
    return patient_id, name


def _text(value: bytes, encoding: str) -> str:
    return value.decode(encoding, "replace").strip(" \x00")
