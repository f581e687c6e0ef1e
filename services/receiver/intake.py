"""What happens to one received C-STORE data set, up to the status the sender is given.

In order: enough disk? decodable? fileable? then, at the same time, durable in the spool and
confirmed on the bus. Only when all five hold is the answer Success, and Success means the
instance will be filed. Any failure answers a failure status with an Error Comment saying
why, and leaves nothing half-done: no partial file, no spooled file whose message was never
confirmed. Data that cannot be decoded is quarantined with its reason; data that decodes but
cannot be filed (no Study or Series Instance UID) is not kept: the sender still has it, and
was told what is missing. Every refusal is logged, and reported on the bus for the audit
trail.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from pydicom.datadict import tag_for_keyword

from services.receiver.audit import patient_of
from services.receiver.spool import Spool
from shared.bus import PublishError
from shared.dicom.encoding import MAX_INFLATED, Captured, DataSetFacts, EncodingError, check_file
from shared.log import get_logger
from shared.messages import (
    CONFORMANT_UID,
    FILING_KEYWORDS,
    UID_PATTERN,
    FilingHeader,
    InstanceReceived,
    InstanceRefused,
    Message,
)
from shared.quarantine import quarantine

log = get_logger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
ERROR_COMMENT_LENGTH = 64  # (0000,0902) Error Comment is an LO
FILING_TAGS = frozenset(int(tag_for_keyword(keyword) or 0) for keyword in FILING_KEYWORDS)

# Publishes and waits for the bus's confirm; raises PublishError otherwise.
Publish = Callable[[Message], Awaitable[None]]
T = TypeVar("T")


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
    """The status for the sender; a failure's reason, and the element at fault if one is."""

    status: int
    reason: str = ""
    spool_name: str = ""
    offending: int | None = None  # a tag, for (0000,0901) Offending Element
    patient: tuple[str, str] = ("", "")  # ID and name, of an instance taken (for the audit)
    study_instance_uid: str = ""

    @property
    def error_comment(self) -> str:
        return self.reason[:ERROR_COMMENT_LENGTH]


class _Unfileable(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class Intake:
    """Decides the fate of each received data set; shared by all associations.

    File work (the structure check, the fsync, quarantine) runs on ``executor``, a bounded
    thread pool, so the event loop keeps serving the other associations meanwhile.
    """

    def __init__(
        self,
        spool: Spool,
        publish: Publish,
        quarantine_dir: Path,
        min_free_bytes: int,
        executor: Executor,
        max_inflated: int = MAX_INFLATED,
    ) -> None:
        self._max_inflated = max_inflated
        self._spool = spool
        self._publish = publish
        self._quarantine_dir = quarantine_dir
        self._min_free_bytes = min_free_bytes
        self._executor = executor

    def low_disk(self) -> Outcome | None:
        """The refusal when the spool's disk is below ``receiver.min_free_disk_mb``."""
        free = self._spool.free_bytes()
        if free >= self._min_free_bytes:
            return None
        return Outcome(
            OUT_OF_RESOURCES,
            f"free disk {free // 2**20} MiB is below receiver.min_free_disk_mb "
            f"({self._min_free_bytes // 2**20} MiB)",
        )

    async def _in_thread(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def receive(self, received: Path, size: int, arrival: Arrival) -> Outcome:
        """Take ``received`` (a complete DICOM file of ``size`` bytes in ``incoming/``) into
        the spool."""
        name = self._spool.new_name()
        try:
            message = InstanceReceived(
                sop_instance_uid=arrival.sop_instance_uid,
                sop_class_uid=arrival.sop_class_uid,
                transfer_syntax_uid=arrival.transfer_syntax_uid,
                spool_name=name,
                size=size,
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
            return await self._quarantined(received, arrival, reason)
        try:
            spooled, descriptor, message, facts = await self._in_thread(
                self._check_and_place, received, arrival, message
            )
        except EncodingError as error:
            return await self._quarantined(received, arrival, str(error))
        except _Unfileable as unfileable:
            await self._in_thread(_remove, received)
            return await self.refuse(arrival, unfileable.outcome)
        except OSError as error:
            await self._in_thread(_remove, received)
            reason = f"spool write failed: {os.strerror(error.errno or 0)}"
            return await self.refuse(arrival, Outcome(OUT_OF_RESOURCES, reason))
        # Durable on disk and confirmed on the bus, at the same time; Success needs both.
        synced, published = await asyncio.gather(
            self._in_thread(self._spool.sync, descriptor),
            self._publish(message),
            return_exceptions=True,
        )
        for result in (synced, published):
            if isinstance(result, BaseException) and not isinstance(result, OSError | PublishError):
                await self._in_thread(self._spool.discard, spooled)
                raise result
        if isinstance(synced, OSError):
            await self._in_thread(self._spool.discard, spooled)
            reason = f"spool write failed: {os.strerror(synced.errno or 0)}"
            return await self.refuse(arrival, Outcome(OUT_OF_RESOURCES, reason))
        if isinstance(published, PublishError):
            await self._in_thread(self._spool.discard, spooled)
            # Not reported on the bus: it is the bus that failed.
            return Outcome(OUT_OF_RESOURCES, f"bus did not confirm: {published}")
        self._spool.mark_published(spooled)
        return Outcome(
            SUCCESS,
            spool_name=name,
            patient=patient_of(facts.captured),
            study_instance_uid=facts.study_instance_uid,
        )

    def _check_and_place(
        self, received: Path, arrival: Arrival, message: InstanceReceived
    ) -> tuple[Path, int, InstanceReceived, DataSetFacts]:
        """In a worker thread: the structure check, then into the spool (not yet synced);
        the message, with the filing elements the check read on the way."""
        facts = decoded(received, arrival, self._max_inflated)
        unfileable = unfileable_reason(facts)
        if unfileable is not None:
            raise _Unfileable(unfileable)
        if facts.captured is not None:
            message = message.model_copy(update={"filing_header": filing_header(facts.captured)})
        spooled, descriptor = self._spool.place(received, message.spool_name, message.to_bytes())
        return spooled, descriptor, message, facts

    async def _quarantined(self, received: Path, arrival: Arrival, reason: str) -> Outcome:
        """Undecodable input: kept in quarantine for the administrator, sender told why."""
        kept: Path | None = None
        try:
            kept = await self._in_thread(
                lambda: quarantine(
                    received,
                    self._quarantine_dir,
                    reason,
                    sop_instance_uid=arrival.sop_instance_uid,
                    calling_ae=arrival.calling_ae,
                    peer_address=arrival.peer_address,
                )
            )
        except OSError as error:
            log.error("instance.quarantine_failed", reason=reason, error=str(error))
            await self._in_thread(_remove, received)
        return await self.refuse(arrival, Outcome(CANNOT_UNDERSTAND, reason), kept)

    async def refuse(self, arrival: Arrival, outcome: Outcome, kept: Path | None = None) -> Outcome:
        """Report a refusal for the audit trail; a bus that cannot take it costs only that."""
        try:
            await self._publish(
                InstanceRefused(
                    sop_instance_uid=arrival.sop_instance_uid[:64],
                    sop_class_uid=arrival.sop_class_uid[:64],
                    status=outcome.status,
                    reason=outcome.reason[:2000],
                    quarantined=kept.name if kept is not None else None,
                    received_at=datetime.now(UTC),
                    calling_ae=arrival.calling_ae,
                    called_ae=arrival.called_ae,
                    peer_address=arrival.peer_address,
                    peer_port=arrival.peer_port,
                )
            )
        except PublishError as error:
            log.warning(
                "instance.refusal_not_audited",
                sop_instance_uid=arrival.sop_instance_uid,
                error=str(error),
            )
        return outcome


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def decoded(path: Path, arrival: Arrival, max_inflated: int = MAX_INFLATED) -> DataSetFacts:
    """The data set's key UIDs; :class:`EncodingError` when it cannot be decoded as labelled
    (a deflated one that inflates beyond ``max_inflated`` bytes included)."""
    try:
        facts = check_file(path, arrival.transfer_syntax_uid, max_inflated, FILING_TAGS)
    except EncodingError as error:
        raise EncodingError(f"data set cannot be decoded: {error}") from None
    # pydicom signals a malformed file meta with many exception types (struct.error, EOFError,
    # ValueError, KeyError, ...); at this boundary every one of them means "cannot understand".
    except Exception as error:
        reason = f"data set cannot be decoded: {type(error).__name__}: {error}"
        raise EncodingError(reason[:500]) from None
    if not CONFORMANT_UID.match(arrival.sop_instance_uid):
        log.warning("instance.nonconformant_uid", sop_instance_uid=arrival.sop_instance_uid)
    if facts.sop_instance_uid != arrival.sop_instance_uid:
        log.warning(
            "instance.uid_mismatch",
            sop_instance_uid=arrival.sop_instance_uid,
            dataset_sop_instance_uid=facts.sop_instance_uid,
        )
    return facts


# What filing needs of a data set, by the element that holds it.
_FILING_UIDS = (
    ("Study Instance UID", 0x0020000D, "study_instance_uid"),
    ("Series Instance UID", 0x0020000E, "series_instance_uid"),
    ("SOP Instance UID", 0x00080018, "sop_instance_uid"),
)


def filing_header(captured: Captured) -> FilingHeader:
    """The captured elements as the message carries them."""
    return FilingHeader(
        implicit=captured.implicit,
        little=captured.little,
        elements={
            f"{tag:08X}": ((vr or b"").decode("ascii"), value.decode("latin-1"))
            for tag, (vr, value) in captured.elements.items()
        },
    )


def unfileable_reason(facts: DataSetFacts) -> Outcome | None:
    """Why the data set could never be filed (a UID filing keys it on is missing or not a
    UID), as the refusal the sender gets; ``None`` when it can be."""
    for name, tag, field in _FILING_UIDS:
        value = getattr(facts, field)
        if not value:
            return Outcome(DOES_NOT_MATCH_SOP_CLASS, f"{name} is missing", offending=tag)
        if not UID_PATTERN.match(value):
            reason = f"{name} is not a UID (64 printable characters at most, one value)"
            return Outcome(DOES_NOT_MATCH_SOP_CLASS, reason, offending=tag)
    return None
