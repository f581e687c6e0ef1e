"""What happens to one received C-STORE data set, up to the status the sender is given.

In order: enough disk? decodable? durable in the spool? confirmed on the bus? Only when all four
hold is the answer Success. Any failure answers a failure status and leaves nothing half-done:
no partial file, no spooled file whose message was never confirmed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from services.receiver.spool import Spool
from shared.bus import PublishError
from shared.dicom.encoding import EncodingError, check_file
from shared.log import get_logger
from shared.messages import CONFORMANT_UID, InstanceReceived, Message
from shared.quarantine import quarantine

log = get_logger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

# Publishes and waits for the bus's confirm; raises PublishError otherwise.
Publish = Callable[[Message], None]


@dataclass(frozen=True)
class Arrival:
    """What the association and the C-STORE request say about a received data set."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    calling_ae: str
    called_ae: str
    peer_address: str
    peer_port: int


@dataclass(frozen=True)
class Outcome:
    status: int
    reason: str = ""
    spool_name: str = ""


class Intake:
    """Decides the fate of each received data set; shared by all association threads."""

    def __init__(
        self, spool: Spool, publish: Publish, quarantine_dir: Path, min_free_bytes: int
    ) -> None:
        self._spool = spool
        self._publish = publish
        self._quarantine_dir = quarantine_dir
        self._min_free_bytes = min_free_bytes

    def receive(self, received: Path, arrival: Arrival) -> Outcome:
        """Take ``received`` (a complete DICOM file in ``incoming/``) into the spool."""
        free = self._spool.free_bytes()
        if free < self._min_free_bytes:
            received.unlink(missing_ok=True)
            return Outcome(
                OUT_OF_RESOURCES,
                f"free disk {free // 2**20} MiB is below receiver.min_free_disk_mb "
                f"({self._min_free_bytes // 2**20} MiB)",
            )
        name = self._spool.new_name()
        try:
            message = InstanceReceived(
                sop_instance_uid=arrival.sop_instance_uid,
                sop_class_uid=arrival.sop_class_uid,
                transfer_syntax_uid=arrival.transfer_syntax_uid,
                spool_name=name,
                size=received.stat().st_size,
                received_at=datetime.now(UTC),
                calling_ae=arrival.calling_ae,
                called_ae=arrival.called_ae,
                peer_address=arrival.peer_address,
                peer_port=arrival.peer_port,
            )
        except ValidationError as error:
            reason = "invalid UID in the C-STORE request: " + "; ".join(
                f"{e['loc'][0]}: {e['msg']}" for e in error.errors()
            )
            return self._refuse(received, arrival, reason)
        problem = undecodable_reason(received, arrival)
        if problem is not None:
            return self._refuse(received, arrival, problem)
        try:
            spooled = self._spool.keep(received, name, message.to_bytes())
        except OSError as error:
            received.unlink(missing_ok=True)
            return Outcome(OUT_OF_RESOURCES, f"spool write failed: {os.strerror(error.errno or 0)}")
        try:
            self._publish(message)
        except PublishError as error:
            self._spool.discard(spooled)
            return Outcome(OUT_OF_RESOURCES, f"bus did not confirm: {error}")
        self._spool.mark_published(spooled)
        return Outcome(SUCCESS, spool_name=name)

    def _refuse(self, received: Path, arrival: Arrival, reason: str) -> Outcome:
        """Undecodable input: kept in quarantine for the administrator, sender told why."""
        try:
            quarantine(
                received,
                self._quarantine_dir,
                reason,
                sop_instance_uid=arrival.sop_instance_uid,
                calling_ae=arrival.calling_ae,
                peer_address=arrival.peer_address,
            )
        except OSError as error:
            log.error("instance.quarantine_failed", reason=reason, error=str(error))
            received.unlink(missing_ok=True)
        return Outcome(CANNOT_UNDERSTAND, reason)


def undecodable_reason(path: Path, arrival: Arrival) -> str | None:
    """Why the data set cannot be decoded in its transfer syntax, or ``None`` if it can."""
    try:
        sop_instance_uid = check_file(path)
    except EncodingError as error:
        return f"data set cannot be decoded: {error}"
    # pydicom signals a malformed file meta with many exception types (struct.error, EOFError,
    # ValueError, KeyError, ...); at this boundary every one of them means "cannot understand".
    except Exception as error:
        return f"data set cannot be decoded: {type(error).__name__}: {error}"[:500]
    if not CONFORMANT_UID.match(arrival.sop_instance_uid):
        log.warning("instance.nonconformant_uid", sop_instance_uid=arrival.sop_instance_uid)
    if sop_instance_uid != arrival.sop_instance_uid:
        log.warning(
            "instance.uid_mismatch",
            sop_instance_uid=arrival.sop_instance_uid,
            dataset_sop_instance_uid=sop_instance_uid,
        )
    return None
