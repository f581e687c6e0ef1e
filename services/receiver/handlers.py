"""pynetdicom event handlers: log every association and instance, answer with a status.

Each handler gets its dependencies as arguments (bound in :mod:`services.receiver.scp`) and
returns a DICOM status rather than raising; pynetdicom runs them on the association's thread.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from structlog.contextvars import bound_contextvars

from services.receiver.intake import OUT_OF_RESOURCES, SUCCESS, Arrival, Intake, Outcome
from services.receiver.policy import check_association
from services.receiver.settings import ReceiverSettings
from shared.log import get_logger

log = get_logger("services.receiver")


@dataclass
class _Tally:
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    failures: int = 0
    bytes: int = 0


class AssociationLedger:
    """Per-association counts, for the summary logged when it ends."""

    def __init__(self) -> None:
        self._tallies: dict[int, _Tally] = {}
        self._lock = threading.Lock()

    def open(self, key: int) -> None:
        with self._lock:
            self._tallies[key] = _Tally()

    def count(self, key: int, size: int, ok: bool) -> None:
        with self._lock:
            tally = self._tallies.setdefault(key, _Tally())
            tally.instances += ok
            tally.failures += not ok
            tally.bytes += size

    def close(self, key: int) -> dict[str, Any]:
        with self._lock:
            tally = self._tallies.pop(key, _Tally())
        seconds = time.monotonic() - tally.started
        return {
            "instances": tally.instances,
            "failures": tally.failures,
            "bytes": tally.bytes,
            "seconds": round(seconds, 3),
        }


def _peer(event: Any) -> dict[str, Any]:
    requestor = event.assoc.requestor
    return {
        "calling_ae": str(requestor.ae_title).strip(),
        "peer_address": requestor.address,
        "peer_port": requestor.port,
    }


def on_connection_open(event: Any) -> None:
    """Answer each message as soon as it is ready (DICOM is request/response)."""
    sock = event.assoc.dul.socket.socket
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_requested(event: Any, settings: ReceiverSettings) -> None:
    primitive = event.assoc.requestor.primitive
    # The requestor's AE title is only filled in after negotiation; read the request's.
    peer = {**_peer(event), "calling_ae": str(primitive.calling_ae_title).strip()}
    called_ae = str(primitive.called_ae_title).strip()
    active = sum(1 for assoc in event.assoc.ae.active_associations if assoc.is_acceptor)
    refusal = check_association(
        settings,
        calling_ae=peer["calling_ae"],
        called_ae=called_ae,
        peer_address=peer["peer_address"],
        active_associations=active,
    )
    log.info("association.requested", called_ae=called_ae, **peer)
    if refusal is not None:
        log.warning("association.rejected", reason=refusal.reason, called_ae=called_ae, **peer)
        event.assoc.acse.send_reject(*refusal.rejection)
        # As pynetdicom does for its own rejections: wait until the A-ASSOCIATE-RJ is out.
        event.assoc.kill()


def on_accepted(event: Any, ledger: AssociationLedger) -> None:
    ledger.open(id(event.assoc))
    contexts = event.assoc.accepted_contexts
    log.info("association.accepted", contexts=len(contexts), **_peer(event))


def on_rejected(event: Any) -> None:
    # Our own refusals were logged with their reason on request; this catches pynetdicom's.
    log.info("association.rejected_by_acse", **_peer(event))


def on_released(event: Any, ledger: AssociationLedger) -> None:
    log.info("association.released", **ledger.close(id(event.assoc)), **_peer(event))


def on_aborted(event: Any, ledger: AssociationLedger) -> None:
    log.warning("association.aborted", **ledger.close(id(event.assoc)), **_peer(event))


def on_echo(event: Any) -> int:
    log.info("echo", **_peer(event))
    return SUCCESS


def on_store(event: Any, intake: Intake, ledger: AssociationLedger) -> int | Dataset:
    started = time.perf_counter()
    request = event.request
    peer = _peer(event)
    received = Path(event.dataset_path)
    size = received.stat().st_size if received.exists() else 0
    arrival = Arrival(
        sop_instance_uid=str(request.AffectedSOPInstanceUID or "").strip("\0 "),
        sop_class_uid=str(request.AffectedSOPClassUID or "").strip("\0 "),
        transfer_syntax_uid=str(event.context.transfer_syntax),
        calling_ae=peer["calling_ae"],
        called_ae=str(event.assoc.acceptor.ae_title).strip(),
        peer_address=peer["peer_address"],
        peer_port=peer["peer_port"],
    )
    try:
        with bound_contextvars(
            sop_instance_uid=arrival.sop_instance_uid, calling_ae=arrival.calling_ae
        ):
            outcome = intake.receive(received, arrival)
    # A bug must not turn into a failure status the modality gives up on: answer "out of
    # resources" so it retries, and leave the traceback for the administrator.
    except Exception:
        log.exception("instance.intake_failed", sop_instance_uid=arrival.sop_instance_uid)
        received.unlink(missing_ok=True)
        outcome = Outcome(OUT_OF_RESOURCES, "internal error (see the log)")
    ledger.count(id(event.assoc), size, outcome.status == SUCCESS)
    fields = {
        "sop_instance_uid": arrival.sop_instance_uid,
        "sop_class_uid": arrival.sop_class_uid,
        "transfer_syntax_uid": arrival.transfer_syntax_uid,
        "size": size,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "status": f"0x{outcome.status:04X}",
        **peer,
    }
    if outcome.status == SUCCESS:
        log.info("instance.received", spool_name=outcome.spool_name, **fields)
        return SUCCESS
    log.warning("instance.refused", reason=outcome.reason, **fields)
    return response(outcome)


def response(outcome: Outcome) -> Dataset:
    """A failure's C-STORE-RSP status with its Error Comment and, if any, Offending Element."""
    answer = Dataset()
    answer.Status = outcome.status
    answer.ErrorComment = outcome.error_comment
    if outcome.offending is not None:
        answer.OffendingElement = [outcome.offending]
    return answer
