"""Query/Retrieve C-MOVE SCP (PS3.4 C.4.2): the matching instances sent to a destination known
by its AE title (``[destinations.AE]``), as C-STORE sub-operations on an association of ours.

The files are sent as filed, in their stored transfer syntax, or uncompressed when the
destination will not take that one: the toolkit's ``send``, in a worker thread, whose progress
callback sends each pending response before the next file goes, and hears a cancel there.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from services.receiver.dimse import C_MOVE, Reply
from services.receiver.operations import Request
from services.receiver.retrieve import Cancelled, Retrieval, Stored, Tally
from services.receiver.settings import QuerySettings
from shared.db.reader import IndexReader
from shared.dicom.net import NetError, SendResult, send_to
from shared.log import get_logger
from shared.settings import Destination

log = get_logger("services.receiver")

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.2"
ABSTRACT_SYNTAXES = (PATIENT_ROOT, STUDY_ROOT)
DESTINATION_UNKNOWN = 0xA801


class Move(Retrieval):
    """Answers C-MOVE on the Patient Root and Study Root information models."""

    commands = frozenset({C_MOVE})
    name = "move"
    operation = "C-MOVE"

    def __init__(
        self,
        index: IndexReader,
        ae_title: str,
        settings: QuerySettings,
        accounts_root: Path,
        destinations: dict[str, Destination],
    ) -> None:
        super().__init__(index, ae_title, settings, accounts_root)
        self._destinations = destinations

    def destination(self, request: Request) -> tuple[str, str]:
        name = request.command.move_destination
        found = self._destinations.get(name.upper())
        return name, f"{found.host}:{found.port}" if found is not None else ""

    def refusal(self, request: Request) -> Reply | None:
        name = request.command.move_destination
        if name.upper() in self._destinations:
            return None
        reason = f"unknown Move Destination {name!r}"
        log.warning("move.refused", reason=reason, calling_ae=request.peer.calling_ae)
        return Reply(DESTINATION_UNKNOWN, reason[:64])

    async def deliver(self, request: Request, instances: list[Stored], tally: Tally) -> None:
        name = request.command.move_destination
        destination = self._destinations[name.upper()]
        by_path = {instance.path: instance for instance in instances}
        loop = asyncio.get_running_loop()
        log.info("move.destination", destination=name, instances=len(instances))

        def progress(result: SendResult, done: int, total: int) -> None:
            # In the sending thread: the pending response goes out before the next file.
            status = result.status if result.outcome == "sent" else None
            tally.add(by_path[result.path], status, result.reason)
            sent = asyncio.run_coroutine_threadsafe(request.progress.pending(tally.pending()), loop)
            sent.result()
            if request.progress.cancelled:
                raise Cancelled

        sending = partial(
            send_to,
            name,
            destination,
            list(by_path),
            calling_aet=self._ae_title,
            progress=progress,
        )
        try:
            await loop.run_in_executor(None, sending)
        except NetError as error:  # the destination's host name does not resolve
            for instance in instances:
                tally.add(instance, None, str(error))
