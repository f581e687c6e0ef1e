"""Query/Retrieve C-MOVE SCP (PS3.4 C.4.2): the matching instances sent to a destination known
by its AE title (``[destinations.AE]``), as C-STORE sub-operations on an association of ours.

The files are sent as filed, in their stored transfer syntax, or uncompressed when the
destination will not take that one (the toolkit's ``send``, in a worker thread). After each
sub-operation a pending response gives the counts; the peer may cancel between two. The final
status: Success when every instance went, Warning (0xB000) with the Failed SOP Instance UID
List when some did not, Refused (0xA702) when none could (the destination down), Cancel
(0xFE00) with what remained.
"""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial
from pathlib import Path

from pydicom.dataset import Dataset

from services.receiver.catalog import FILES
from services.receiver.dimse import C_MOVE, Reply
from services.receiver.identifier import (
    IDENTIFIER_DOES_NOT_MATCH,
    Refused,
    encode,
    look_up,
    read_query,
)
from services.receiver.operations import Gathered, Request
from services.receiver.settings import QuerySettings
from services.receiver.upper_layer import PeerGone
from shared.db.reader import IndexReader
from shared.dicom.net import NetError, SendResult, client_tls_context, send
from shared.log import get_logger
from shared.settings import Destination

log = get_logger("services.receiver")

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.2"
ABSTRACT_SYNTAXES = (PATIENT_ROOT, STUDY_ROOT)

SUCCESS, PENDING, CANCEL, WARNING = 0x0000, 0xFF00, 0xFE00, 0xB000
UNABLE_TO_PERFORM = 0xA702
DESTINATION_UNKNOWN = 0xA801
TOO_LONG = Reply(IDENTIFIER_DOES_NOT_MATCH, "identifier longer than 1 MiB")
# The key a retrieval at each level must name (PS3.4 C.4.2.2.1: unique keys only).
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


class _Cancelled(Exception):
    """The peer cancelled: the sub-operations stop."""


@dataclasses.dataclass
class _Tally:
    """Sub-operations so far."""

    total: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = dataclasses.field(default_factory=list)
    first_reason: str = ""

    @property
    def remaining(self) -> int:
        return self.total - self.completed - self.failed - self.warning

    def add(self, result: SendResult, uid: str) -> None:
        if result.outcome == "failed":
            self.failed += 1
            self.failed_uids.append(uid)
            self.first_reason = self.first_reason or result.reason
        elif result.status not in (None, 0x0000):
            self.warning += 1
        else:
            self.completed += 1


class Move:
    """Answers C-MOVE on the Patient Root and Study Root information models."""

    commands = frozenset({C_MOVE})

    def __init__(
        self,
        index: IndexReader,
        ae_title: str,
        settings: QuerySettings,
        destinations: dict[str, Destination],
        accounts_root: Path,
    ) -> None:
        self._index = index
        self._ae_title = ae_title
        self._settings = settings
        self._destinations = destinations
        self._accounts_root = accounts_root

    async def perform(self, request: Request) -> Reply:
        return Reply(IDENTIFIER_DOES_NOT_MATCH, "a C-MOVE-RQ needs an identifier")

    def receive(self, request: Request) -> Gathered:
        return Gathered(request, self.answer, TOO_LONG)

    async def answer(self, request: Request, encoded: bytes) -> Reply:
        peer = request.peer
        name = request.command.move_destination
        destination = self._destinations.get(name)
        if destination is None:
            reason = f"unknown Move Destination {name!r}"
            log.warning("move.refused", reason=reason, calling_ae=peer.calling_ae)
            return Reply(DESTINATION_UNKNOWN, reason[:64])
        try:
            _, query = read_query(request, encoded, self._settings.scopes)
            unique = UNIQUE_KEYS[query.level]
            if not any(c.keyword == unique for c in query.conditions):
                reason = f"a retrieval at {query.level} level names its {unique}"
                log.warning("move.refused", reason=reason, calling_ae=peer.calling_ae)
                return Reply(IDENTIFIER_DOES_NOT_MATCH, reason)
            instances = dataclasses.replace(query, level="IMAGE", returned=[])
            limited = self._settings.model_copy(update={"max_matches": self._settings.max_retrieve})
            matches = await look_up(self._index, instances, limited, request, FILES)
        except Refused as refused:
            return refused.reply
        files = {
            self._accounts_root / m.values["_path"][0]: m.values["_sop_instance"][0]
            for m in matches
        }
        log.info(
            "move",
            level=query.level,
            destination=name,
            instances=len(files),
            calling_ae=peer.calling_ae,
            peer_address=peer.address,
        )
        tally = _Tally(len(files))
        if files:
            try:
                await self._send(request, name, destination, files, tally)
            except _Cancelled:
                log.info("move.cancelled", destination=name, **_counts(tally))
                return self._final(request, CANCEL, tally, remaining=True)
            except NetError as error:  # the destination's host name does not resolve
                tally.failed, tally.failed_uids = len(files), list(files.values())
                tally.first_reason = str(error)
            except PeerGone:
                log.warning("move.requester_gone", destination=name, **_counts(tally))
                return Reply(CANCEL)  # sent to nobody: the association is over
        log.info("move.done", destination=name, reason=tally.first_reason, **_counts(tally))
        if tally.failed and not tally.completed and not tally.warning:
            return self._final(request, UNABLE_TO_PERFORM, tally)
        return self._final(request, WARNING if tally.failed else SUCCESS, tally)

    async def _send(
        self,
        request: Request,
        name: str,
        destination: Destination,
        files: dict[Path, str],
        tally: _Tally,
    ) -> None:
        loop = asyncio.get_running_loop()

        def progress(result: SendResult, done: int, total: int) -> None:
            # In the sending thread: the pending response goes out before the next file.
            tally.add(result, files.get(result.path, ""))
            if result.outcome == "failed":
                log.warning("move.instance_failed", path=str(result.path), reason=result.reason)
            pending = Reply(PENDING, counts=(tally.remaining, *_numbers(tally)))
            asyncio.run_coroutine_threadsafe(request.progress.pending(pending), loop).result()
            if request.progress.cancelled:
                raise _Cancelled

        tls = None
        if destination.tls:
            tls = client_tls_context(destination.ca, destination.cert, destination.key)
        sending = partial(
            send,
            destination.host,
            destination.port,
            list(files),
            called_aet=name,
            calling_aet=self._ae_title,
            tls=tls,
            timeout=destination.timeout,
            progress=progress,
        )
        await loop.run_in_executor(None, sending)

    def _final(
        self, request: Request, status: int, tally: _Tally, remaining: bool = False
    ) -> Reply:
        attributes = b""
        if tally.failed_uids or (remaining and tally.remaining):
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = tally.failed_uids
            attributes = encode(failed, request.transfer_syntax)
        counts = (tally.remaining if remaining else None, *_numbers(tally))
        comment = tally.first_reason[:64] if status in (WARNING, UNABLE_TO_PERFORM) else ""
        return Reply(status, comment, attributes=attributes, counts=counts)


def _numbers(tally: _Tally) -> tuple[int, int, int]:
    return tally.completed, tally.failed, tally.warning


def _counts(tally: _Tally) -> dict[str, int]:
    return {"completed": tally.completed, "failed": tally.failed, "warning": tally.warning}
