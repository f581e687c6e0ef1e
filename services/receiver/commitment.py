"""Storage Commitment Push Model SCP (PS3.4 J): a modality asks whether its images are safe
to delete, and is told, instance by instance, only what is true.

An N-ACTION-RQ is answered Success once its transaction is written, durably, to
``<data_dir>/commitments/`` (the journal): a receiver killed afterwards finishes it at its next
start. An instance is committed when the index holds it, of the SOP class the modality named,
and its file is in the accounts tree at the size indexed: the router writes and fsyncs a file
before the index hears of it. Instances still on their way are waited for, up to
``receiver.commitment.wait``; what is missing then is reported failed with its reason.

The N-EVENT-REPORT goes on the requester's association while it is open; otherwise on a new
association of ours to the address ``[destinations.<its AE title>]`` gives, tried again every
``receiver.commitment.retry`` seconds until ``receiver.commitment.give_up_after``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa
from pydicom.dataset import Dataset

from services.receiver.dimse import N_ACTION, Reply
from services.receiver.identifier import decode, encode
from services.receiver.operations import Gathered, Request, SubOperations
from services.receiver.settings import CommitmentSettings
from services.receiver.upper_layer import PeerGone
from shared.db.reader import IndexReader
from shared.db.schema import instances
from shared.dicom.net import NetError, peer_of, report_event
from shared.files import atomic_write_bytes, fsync_directory
from shared.log import get_logger
from shared.settings import Destination

log = get_logger("services.receiver")

SOP_CLASS = "1.2.840.10008.1.20.1"
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_COMMITMENT = 1
ALL_COMMITTED, SOME_FAILED = 1, 2
# Failure reasons (PS3.4 J.3.2.1.1.2)
PROCESSING_FAILURE = 0x0110
NO_SUCH_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
NO_SUCH_ACTION = 0x0123
INVALID_INSTANCE = 0x0117


@dataclass(frozen=True)
class Transaction:
    """One N-ACTION's request, as the journal keeps it."""

    uid: str
    calling_ae: str
    references: list[tuple[str, str]]  # (SOP Class UID, SOP Instance UID)
    requested_at: float  # time.time()
    transfer_syntax: str


class Journal:
    """Transactions not yet reported, one file each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, uid: str) -> Path:
        return self.folder / f"{uid}.json"

    def save(self, transaction: Transaction) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self._path(transaction.uid), json.dumps(asdict(transaction)).encode())

    def remove(self, uid: str) -> None:
        self._path(uid).unlink(missing_ok=True)
        fsync_directory(self.folder)

    def pending(self) -> list[Transaction]:
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                record = json.loads(path.read_text())
                record["references"] = [tuple(pair) for pair in record["references"]]
                found.append(Transaction(**record))
            except (OSError, ValueError, TypeError) as error:
                log.error("commitment.unreadable", file=path.name, error=str(error))
        return found


class Commitment:
    """Answers N-ACTION on the Storage Commitment Push Model, and reports."""

    commands = frozenset({N_ACTION})

    def __init__(
        self,
        index: IndexReader,
        ae_title: str,
        settings: CommitmentSettings,
        journal: Journal,
        accounts_root: Path,
        destinations: dict[str, Destination],
    ) -> None:
        self._index = index
        self._ae_title = ae_title
        self._settings = settings
        self._journal = journal
        self._accounts_root = accounts_root
        self._destinations = destinations
        self._tasks: set[asyncio.Task[None]] = set()

    def resume(self) -> int:
        """Go on with the transactions a previous run accepted and did not report."""
        pending = self._journal.pending()
        for transaction in pending:
            self._start(transaction, None, 0)
        if pending:
            log.info("commitment.resumed", transactions=len(pending))
        return len(pending)

    async def stop(self) -> None:
        """Stop waiting; what is not reported stays in the journal for the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def perform(self, request: Request) -> Reply:
        return Reply(PROCESSING_FAILURE, "an N-ACTION-RQ needs its action information")

    def receive(self, request: Request) -> Gathered:
        return Gathered(request, self.answer, Reply(PROCESSING_FAILURE, "over 1 MiB"), 16 * 2**20)

    async def answer(self, request: Request, encoded: bytes) -> Reply:
        command, peer = request.command, request.peer
        if command.uid("RequestedSOPInstanceUID") != WELL_KNOWN_INSTANCE:
            return Reply(INVALID_INSTANCE, f"the instance is {WELL_KNOWN_INSTANCE}")
        if command.action_type != REQUEST_COMMITMENT:
            return Reply(NO_SUCH_ACTION, "the one action is 1, Request Storage Commitment")
        try:
            information = decode(encoded, request.transfer_syntax)
            uid = str(information.TransactionUID).strip()
            references = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in information.ReferencedSOPSequence
            ]
            if not uid or not references:
                raise ValueError("no Transaction UID, or no Referenced SOP Sequence items")
        except (AttributeError, ValueError, KeyError) as error:
            reason = f"unreadable action information: {error}"
            log.warning("commitment.refused", reason=reason, calling_ae=peer.calling_ae)
            return Reply(PROCESSING_FAILURE, reason[:64])
        transaction = Transaction(
            uid, peer.calling_ae, references, time.time(), request.transfer_syntax
        )
        await asyncio.to_thread(self._journal.save, transaction)
        log.info(
            "commitment.requested",
            transaction_uid=uid,
            instances=len(references),
            calling_ae=peer.calling_ae,
            peer_address=peer.address,
        )
        # The report is looked up first, so this Success goes out before it.
        self._start(transaction, request.progress.sub_operations, command.context_id)
        return Reply(0x0000)

    def _start(
        self, transaction: Transaction, association: SubOperations | None, context_id: int
    ) -> None:
        task = asyncio.create_task(self._resolve(transaction, association, context_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(
        self, transaction: Transaction, association: SubOperations | None, context_id: int
    ) -> None:
        deadline = transaction.requested_at + self._settings.wait
        while True:
            failures = await self._failures(transaction)
            if not failures or time.time() >= deadline:
                break
            await asyncio.sleep(self._settings.poll_interval)
        report = _report(transaction, failures, self._ae_title)
        event = SOME_FAILED if failures else ALL_COMMITTED
        how = await self._deliver(transaction, association, context_id, event, report)
        if how is None:
            return  # given up, logged; the journal keeps it for an operator
        await asyncio.to_thread(self._journal.remove, transaction.uid)
        log.info(
            "commitment.reported",
            transaction_uid=transaction.uid,
            committed=len(transaction.references) - len(failures),
            failed=len(failures),
            on=how,
            calling_ae=transaction.calling_ae,
        )

    async def _failures(self, transaction: Transaction) -> dict[str, tuple[str, int]]:
        """The references not committed: SOP Instance UID -> (SOP Class UID, reason)."""
        wanted = dict((instance, sop_class) for sop_class, instance in transaction.references)
        try:
            async with self._index.connection() as connection:
                rows = []
                keys = list(wanted)
                for start in range(0, len(keys), 500):
                    statement = sa.select(
                        instances.c.sop_instance_uid,
                        instances.c.sop_class_uid,
                        instances.c.path,
                        instances.c.size,
                    ).where(instances.c.sop_instance_uid.in_(keys[start : start + 500]))
                    rows += list(await connection.execute(statement))
        except (OSError, sa.exc.SQLAlchemyError) as error:
            log.warning("commitment.index_unreadable", error=f"{type(error).__name__}: {error}")
            return {uid: (sop_class, PROCESSING_FAILURE) for uid, sop_class in wanted.items()}
        found = {str(row[0]): row for row in rows}
        failures: dict[str, tuple[str, int]] = {}
        for uid, sop_class in wanted.items():
            row = found.get(uid)
            if row is None:
                failures[uid] = (sop_class, NO_SUCH_INSTANCE)
            elif str(row[1]) != sop_class:
                failures[uid] = (sop_class, CLASS_INSTANCE_CONFLICT)
            elif not await asyncio.to_thread(_intact, self._accounts_root / str(row[2]), row[3]):
                failures[uid] = (sop_class, PROCESSING_FAILURE)
        return failures

    async def _deliver(
        self,
        transaction: Transaction,
        association: SubOperations | None,
        context_id: int,
        event: int,
        report: Dataset,
    ) -> str | None:
        """Send the report: how it went ("the same association", "a new association"), or
        None when it could not be, by ``give_up_after``."""
        if association is not None and association.open:
            encoded = encode(report, transaction.transfer_syntax)
            try:
                status = await association.event_report(
                    context_id, SOP_CLASS, WELL_KNOWN_INSTANCE, event, encoded
                )
                if status == 0x0000:
                    return "the same association"
                log.warning("commitment.report_refused", status=f"0x{status:04X}")
            except (PeerGone, TimeoutError) as error:
                log.info("commitment.association_gone", reason=str(error))
        give_up = transaction.requested_at + self._settings.give_up_after
        while True:
            reason = await self._report_anew(transaction, event, report)
            if reason is None:
                return "a new association"
            if time.time() >= give_up:
                log.error(
                    "commitment.undelivered",
                    transaction_uid=transaction.uid,
                    calling_ae=transaction.calling_ae,
                    reason=reason,
                    journal=str(self._journal.folder),
                )
                return None
            log.warning(
                "commitment.report_failed",
                transaction_uid=transaction.uid,
                reason=reason,
                retry_in=self._settings.retry,
            )
            await asyncio.sleep(self._settings.retry)

    async def _report_anew(
        self, transaction: Transaction, event: int, report: Dataset
    ) -> str | None:
        """Report on a new association; None when done, else why not."""
        destination = self._destinations.get(transaction.calling_ae.upper())
        if destination is None:
            return f"no [destinations.{transaction.calling_ae}] to send the report to"
        peer = peer_of(transaction.calling_ae, destination, self._ae_title)
        try:
            status = await asyncio.to_thread(
                report_event, peer, SOP_CLASS, WELL_KNOWN_INSTANCE, event, report
            )
        except NetError as error:
            return str(error)
        return None if status == 0x0000 else f"{peer} answered 0x{status:04X}"


def _intact(path: Path, size: int) -> bool:
    try:
        return os.stat(path).st_size == size
    except OSError:
        return False


def _report(
    transaction: Transaction, failures: dict[str, tuple[str, int]], ae_title: str
) -> Dataset:
    report = Dataset()
    report.TransactionUID = transaction.uid
    report.RetrieveAETitle = ae_title
    committed = []
    for sop_class, instance in transaction.references:
        if instance not in failures:
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, instance
            committed.append(item)
    if committed:
        report.ReferencedSOPSequence = committed
    if failures:
        failed = []
        for instance, (sop_class, reason) in failures.items():
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, instance
            item.FailureReason = reason
            failed.append(item)
        report.FailedSOPSequence = failed
    return report
