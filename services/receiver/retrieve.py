"""What C-MOVE and C-GET share (PS3.4 C.4.2, C.4.3): the instances a retrieval names, the
counts of its sub-operations, a pending response after each, cancel, and the final status.

Success when every instance went; Warning (0xB000) with the Failed SOP Instance UID List when
some did not; Refused (0xA702) when none could; Cancel (0xFE00) with what remained. A
retrieval must name the unique key of its level (PS3.4 C.4.2.2.1 allows no other matching), so
an empty identifier cannot send the whole archive.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path

from pydicom.dataset import Dataset

from services.receiver.catalog import FILES, Match
from services.receiver.dimse import Reply
from services.receiver.identifier import (
    IDENTIFIER_DOES_NOT_MATCH,
    TOO_LONG,
    Refused,
    encode,
    look_up,
    read_query,
)
from services.receiver.operations import Gathered, Request
from services.receiver.settings import QuerySettings
from services.receiver.upper_layer import PeerGone
from shared.db.reader import IndexReader
from shared.log import get_logger

log = get_logger("services.receiver")

SUCCESS, PENDING, CANCEL, WARNING = 0x0000, 0xFF00, 0xFE00, 0xB000
UNABLE_TO_PERFORM = 0xA702
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


class Cancelled(Exception):
    """The peer cancelled: the sub-operations stop."""


@dataclasses.dataclass(frozen=True)
class Stored:
    """An instance to send: its file and what the index says of it."""

    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    study_uid: str = ""
    patient: tuple[str, str] = ("", "")  # ID and name


@dataclasses.dataclass
class Tally:
    """Sub-operations so far."""

    total: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = dataclasses.field(default_factory=list)
    sent_uids: set[str] = dataclasses.field(default_factory=set)
    first_reason: str = ""

    @property
    def remaining(self) -> int:
        return self.total - self.completed - self.failed - self.warning

    def add(self, instance: Stored, status: int | None, reason: str = "") -> None:
        """One sub-operation's outcome: a status (None: it failed before one came back)."""
        if status is None or (status not in (0x0000, 0x0001) and not 0xB000 <= status <= 0xBFFF):
            self.failed += 1
            self.failed_uids.append(instance.sop_instance)
            self.first_reason = self.first_reason or reason or f"status 0x{status or 0:04X}"
            log.warning(
                "retrieve.instance_failed",
                sop_instance_uid=instance.sop_instance,
                reason=reason or f"status 0x{status or 0:04X}",
            )
        elif status != 0x0000:
            self.warning += 1
            self.sent_uids.add(instance.sop_instance)
        else:
            self.completed += 1
            self.sent_uids.add(instance.sop_instance)

    def pending(self) -> Reply:
        return Reply(PENDING, counts=(self.remaining, self.completed, self.failed, self.warning))

    def log_fields(self) -> dict[str, int]:
        return {"completed": self.completed, "failed": self.failed, "warning": self.warning}


class Retrieval(ABC):
    """A retrieval service: its identifier, its instances, its outcome. Subclasses deliver."""

    name = "retrieve"
    operation = "retrieve"  # as the audit trail names it

    def __init__(
        self, index: IndexReader, ae_title: str, settings: QuerySettings, accounts_root: Path
    ) -> None:
        self._index = index
        self._ae_title = ae_title
        self._settings = settings
        self._accounts_root = accounts_root

    async def perform(self, request: Request) -> Reply:
        return Reply(IDENTIFIER_DOES_NOT_MATCH, "a retrieval needs an identifier")

    def receive(self, request: Request) -> Gathered:
        return Gathered(request, self.answer, TOO_LONG)

    def refusal(self, request: Request) -> Reply | None:
        """Why this request cannot be served at all, before anything is looked up."""
        return None

    def destination(self, request: Request) -> tuple[str, str]:
        """Where this retrieval sends: the AE title and its address."""
        return request.peer.calling_ae, request.peer.address

    @abstractmethod
    async def deliver(self, request: Request, instances: list[Stored], tally: Tally) -> None:
        """Send ``instances``, counting each in ``tally`` and sending ``tally.pending()``
        after each; :class:`Cancelled` when the peer cancels."""

    async def answer(self, request: Request, encoded: bytes) -> Reply:
        peer = request.peer
        refused = self.refusal(request)
        if refused is not None:
            return refused
        try:
            instances = await self._instances(request, encoded)
        except Refused as refusal:
            return refusal.reply
        tally = Tally(len(instances))
        fields = {"calling_ae": peer.calling_ae, "peer_address": peer.address}
        log.info(self.name, instances=len(instances), **fields)
        try:
            if instances:
                await self.deliver(request, instances, tally)
        except Cancelled:
            log.info(f"{self.name}.cancelled", **tally.log_fields(), **fields)
            return self._final(request, CANCEL, tally, remaining=True)
        except PeerGone:
            log.warning(f"{self.name}.requester_gone", **tally.log_fields(), **fields)
            return Reply(CANCEL)  # sent to nobody: the association is over
        finally:
            self._audit(request, instances, tally)
        log.info(f"{self.name}.done", reason=tally.first_reason, **tally.log_fields(), **fields)
        if tally.failed and not tally.completed and not tally.warning:
            return self._final(request, UNABLE_TO_PERFORM, tally)
        return self._final(request, WARNING if tally.failed else SUCCESS, tally)

    async def _instances(self, request: Request, encoded: bytes) -> list[Stored]:
        _, query = read_query(request, encoded, self._settings.scopes)
        unique = UNIQUE_KEYS[query.level]
        if not any(c.keyword == unique for c in query.conditions):
            reason = f"a retrieval at {query.level} level names its {unique}"
            log.warning(f"{self.name}.refused", reason=reason, calling_ae=request.peer.calling_ae)
            raise Refused(Reply(IDENTIFIER_DOES_NOT_MATCH, reason))
        every = dataclasses.replace(query, level="IMAGE", returned=[])
        limited = self._settings.model_copy(update={"max_matches": self._settings.max_retrieve})
        matches = await look_up(self._index, every, limited, request, FILES)
        return [
            Stored(
                self._accounts_root / m.values["_path"][0],
                m.values["_sop_class"][0],
                m.values["_sop_instance"][0],
                m.values["_transfer_syntax"][0],
                _first(m, "StudyInstanceUID"),
                (_first(m, "PatientID"), _first(m, "PatientName")),
            )
            for m in matches
        ]

    def _audit(self, request: Request, instances: list[Stored], tally: Tally) -> None:
        """One ``exported`` event per patient whose instances this retrieval sent or tried."""
        if request.audit is None or not instances:
            return
        ae_title, address = self.destination(request)
        failed = set(tally.failed_uids)
        patients: dict[str, list[Stored]] = {}
        for instance in instances:
            patients.setdefault(instance.patient[0], []).append(instance)
        for patient_id, theirs in patients.items():
            sent = [i for i in theirs if i.sop_instance in tally.sent_uids]
            studies: dict[str, list[dict[str, str]]] = {}
            for instance in sent:
                studies.setdefault(instance.study_uid, []).append(
                    {"sop_class_uid": instance.sop_class, "sop_instance_uid": instance.sop_instance}
                )
            request.audit.report(
                "exported",
                {
                    "operation": self.operation,
                    "destination": ae_title,
                    "destination_address": address,
                    "patient_id": patient_id,
                    "patient_name": theirs[0].patient[1],
                    "count": len(sent),
                    "failed": sum(i.sop_instance in failed for i in theirs),
                    "studies": [
                        {"study_instance_uid": uid, "instances": sent_here}
                        for uid, sent_here in studies.items()
                    ],
                },
                study_instance_uid=next(iter(studies)) if len(studies) == 1 else None,
            )

    def _final(self, request: Request, status: int, tally: Tally, remaining: bool = False) -> Reply:
        attributes = b""
        if tally.failed_uids:
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = tally.failed_uids
            attributes = encode(failed, request.transfer_syntax)
        counts = (
            tally.remaining if remaining else None,
            tally.completed,
            tally.failed,
            tally.warning,
        )
        comment = tally.first_reason[:64] if status in (WARNING, UNABLE_TO_PERFORM) else ""
        return Reply(status, comment, attributes=attributes, counts=counts)


def _first(match: Match, keyword: str) -> str:
    values = match.text_values(keyword)
    return values[0] if values else ""
