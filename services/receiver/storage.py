"""Storage SCP (PS3.4 Annex B): each C-STORE data set streamed to the spool as it arrives.

The File Meta Information (with the calling AE title as Source Application Entity Title) is
written to a new file in ``incoming/`` when the request's command set arrives; each data set
fragment is appended as it is read from the socket, so memory stays bounded however large the
instance. The free disk is checked at the first fragment. When the disk is low or fills up
mid-transfer, the partial file is deleted, the rest of the data set is read to nowhere, and
the answer is 0xA700 (out of resources), so that the modality retries later. A complete data
set goes to the :class:`~services.receiver.intake.Intake`, whose outcome is the answer.

Writes go to the page cache from the event loop (tens of microseconds for a PDU); the fsync
that makes them durable runs in the intake's thread pool.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from structlog.contextvars import bound_contextvars

from services.receiver.dimse import C_STORE, Reply
from services.receiver.file_meta import file_meta
from services.receiver.intake import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    SUCCESS,
    Arrival,
    Intake,
    Outcome,
)
from services.receiver.operations import DataSetSink, Request
from services.receiver.spool import Spool
from shared.log import get_logger

log = get_logger("services.receiver")


class Storage:
    """Takes C-STORE requests of any SOP class into the spool."""

    commands = frozenset({C_STORE})

    def __init__(self, spool: Spool, intake: Intake) -> None:
        self._spool = spool
        self._intake = intake

    async def perform(self, request: Request) -> Reply:
        return Reply(CANNOT_UNDERSTAND, "C-STORE request without a data set")

    def receive(self, request: Request) -> DataSetSink:
        return Transfer(self._spool, self._intake, request)


class Transfer:
    """One C-STORE data set on its way from the socket to ``incoming/``."""

    def __init__(self, spool: Spool, intake: Intake, request: Request) -> None:
        self._intake = intake
        self._audit = request.audit
        self._started = time.perf_counter()
        command, peer = request.command, request.peer
        self.arrival = Arrival(
            sop_instance_uid=command.uid("AffectedSOPInstanceUID"),
            sop_class_uid=command.uid("AffectedSOPClassUID"),
            transfer_syntax_uid=request.transfer_syntax,
            calling_ae=peer.calling_ae,
            called_ae=peer.called_ae,
            peer_address=peer.address,
            peer_port=peer.port,
        )
        self.size = 0  # of the data set, as received
        self._meta_size = 0
        self._failure: Outcome | None = None
        self._first = True
        self._path: Path = spool.incoming_path()
        self._descriptor = -1
        try:
            self._descriptor = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            meta = file_meta(
                self.arrival.sop_class_uid,
                self.arrival.sop_instance_uid,
                self.arrival.transfer_syntax_uid,
                peer.calling_ae,
            )
            self._write(meta)
            self._meta_size = len(meta)
        except OSError as error:
            self._fail(
                Outcome(OUT_OF_RESOURCES, f"spool write failed: {os.strerror(error.errno or 0)}")
            )

    def _write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self._descriptor, view)
            view = view[written:]

    def write(self, fragment: bytes) -> None:
        self.size += len(fragment)
        if self._failure is not None:
            return  # read to nowhere
        if self._first:
            self._first = False
            low = self._intake.low_disk()
            if low is not None:
                self._fail(low)
                return
        try:
            self._write(fragment)
        except OSError as error:
            self._fail(
                Outcome(OUT_OF_RESOURCES, f"spool write failed: {os.strerror(error.errno or 0)}")
            )

    def _fail(self, outcome: Outcome) -> None:
        self._failure = outcome
        self.discard()

    def _close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def discard(self) -> None:
        self._close()
        self._path.unlink(missing_ok=True)

    async def finish(self) -> Reply:
        arrival = self.arrival
        with bound_contextvars(
            sop_instance_uid=arrival.sop_instance_uid, calling_ae=arrival.calling_ae
        ):
            try:
                self._close()
                if self._failure is not None:
                    outcome = await self._intake.refuse(arrival, self._failure)
                else:
                    outcome = await self._intake.receive(
                        self._path, self._meta_size + self.size, arrival
                    )
            # A bug must not turn into a failure status the modality gives up on: answer "out
            # of resources" so it retries, and leave the traceback for the administrator.
            except Exception:
                log.exception("instance.intake_failed", sop_instance_uid=arrival.sop_instance_uid)
                self._path.unlink(missing_ok=True)
                outcome = Outcome(OUT_OF_RESOURCES, "internal error (see the log)")
        self._log(outcome)
        if outcome.status == SUCCESS:
            if self._audit is not None:
                self._audit.stored(
                    outcome.patient,
                    outcome.study_instance_uid,
                    arrival.sop_class_uid,
                    arrival.sop_instance_uid,
                )
            return Reply(SUCCESS)
        offending = [outcome.offending] if outcome.offending is not None else []
        return Reply(outcome.status, outcome.error_comment, offending)

    def _log(self, outcome: Outcome) -> None:
        arrival = self.arrival
        fields = {
            "sop_instance_uid": arrival.sop_instance_uid,
            "sop_class_uid": arrival.sop_class_uid,
            "transfer_syntax_uid": arrival.transfer_syntax_uid,
            "size": self.size,
            "duration_ms": round((time.perf_counter() - self._started) * 1000, 2),
            "status": f"0x{outcome.status:04X}",
            "calling_ae": arrival.calling_ae,
            "peer_address": arrival.peer_address,
            "peer_port": arrival.peer_port,
        }
        if outcome.status == SUCCESS:
            log.info("instance.received", spool_name=outcome.spool_name, **fields)
        else:
            log.warning("instance.refused", reason=outcome.reason, **fields)
