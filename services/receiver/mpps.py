"""Modality Performed Procedure Step SCP (PS3.4 Annex F): N-CREATE and N-SET.

The receiver has no database, so it does not keep the steps: each request becomes an
``mpps.updated`` message, published with a confirm before the modality is told Success, and
the scan-sheet service records and merges the steps. What the receiver checks is what the
request itself must say: a step is created IN PROGRESS, and a status, when set, is one of
IN PROGRESS, COMPLETED, DISCONTINUED. Whether an N-CREATE repeats a known step or an N-SET
names an unknown one is not checked here (that needs the steps' state): both are accepted and
merged, which a modality retrying a request it saw fail also needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from typing import Any, cast

from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from pynetdicom.dsutils import decode

from services.receiver.dimse import N_CREATE, N_SET, Reply
from services.receiver.intake import Publish
from services.receiver.operations import DataSetSink, Request
from shared.bus import PublishError
from shared.log import get_logger
from shared.messages import MppsUpdated

log = get_logger("services.receiver")

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
LONGEST_ATTRIBUTES = 16 * 2**20
# pydicom raises these for a data set it cannot decode or a value it cannot convert.
_BAD_DATA_SET = (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError)


class InvalidStep(ValueError):
    """The request's attributes do not describe a step we can accept."""


def _items(dataset: Dataset, keyword: str) -> list[Dataset]:
    return list(dataset.get(keyword) or [])


def referenced_instances(attributes: Dataset) -> list[str] | None:
    """SOP Instance UIDs of the Performed Series Sequence; None when the request has none."""
    if "PerformedSeriesSequence" not in attributes:
        return None
    found: list[str] = []
    for performed in _items(attributes, "PerformedSeriesSequence"):
        for keyword in (
            "ReferencedImageSequence",
            "ReferencedNonImageCompositeSOPInstanceSequence",
        ):
            for item in _items(performed, keyword):
                uid = str(item.get("ReferencedSOPInstanceUID") or "").strip()
                if uid:
                    found.append(uid)
    return found


def describe(step_uid: str, operation: str, attributes: Dataset, calling_ae: str) -> MppsUpdated:
    """The message for one request; :class:`InvalidStep` when its values are not acceptable."""
    raw_status = attributes.get("PerformedProcedureStepStatus")
    status = str(raw_status).strip().upper() if raw_status is not None else None
    if operation == "create" and status != "IN PROGRESS":
        raise InvalidStep(f"a step is created IN PROGRESS, not {status!r}")
    if status is not None and status not in STATUSES:
        raise InvalidStep(f"unknown Performed Procedure Step Status {status!r}")
    studies = [
        str(item.StudyInstanceUID).strip()
        for item in _items(attributes, "ScheduledStepAttributesSequence")
        if item.get("StudyInstanceUID")
    ]
    try:
        return MppsUpdated(
            step_uid=step_uid,
            operation="create" if operation == "create" else "set",
            status=cast(Any, status),
            study_instance_uids=sorted(set(studies)),
            referenced_sop_instance_uids=referenced_instances(attributes),
            received_at=datetime.now(UTC),
            calling_ae=calling_ae,
        )
    except ValidationError as error:
        raise InvalidStep(f"invalid UID or value: {error.errors()[0]['msg']}") from None


class Mpps:
    """Answers N-CREATE and N-SET on the MPPS SOP class."""

    commands = frozenset({N_CREATE, N_SET})

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def perform(self, request: Request) -> Reply:
        return await self.answer(request, Dataset())

    def receive(self, request: Request) -> DataSetSink:
        return _Attributes(self, request)

    async def answer(self, request: Request, attributes: Dataset) -> Reply:
        command = request.command
        if command.field == N_CREATE:
            # The step's UID is ours to give when the modality sent none.
            operation, step_uid = "create", command.uid("AffectedSOPInstanceUID") or generate_uid()
        else:
            operation, step_uid = "set", command.uid("RequestedSOPInstanceUID")
        calling_ae = request.peer.calling_ae
        context = {"step_uid": step_uid, "operation": operation, "calling_ae": calling_ae}
        try:
            message = describe(step_uid, operation, attributes, calling_ae)
        except InvalidStep as error:
            log.warning("mpps.refused", reason=str(error), **context)
            return Reply(INVALID_ATTRIBUTE_VALUE)
        except _BAD_DATA_SET as error:
            log.warning("mpps.refused", reason=f"undecodable attributes: {error}", **context)
            return Reply(PROCESSING_FAILURE)
        try:
            await self._publish(message)
        except PublishError as error:
            log.error("mpps.publish_failed", error=str(error), **context)
            return Reply(PROCESSING_FAILURE)
        log.info(
            "mpps.received",
            status=message.status,
            studies=message.study_instance_uids,
            referenced=len(message.referenced_sop_instance_uids or []),
            **context,
        )
        return Reply(SUCCESS, affected_sop_instance_uid=step_uid)


class _Attributes:
    """An N-CREATE or N-SET attribute list: small, so gathered and decoded whole (bounded)."""

    def __init__(self, mpps: Mpps, request: Request) -> None:
        self._mpps = mpps
        self._request = request
        self._encoded = bytearray()
        self._too_long = False

    def write(self, fragment: bytes) -> None:
        if len(self._encoded) + len(fragment) > LONGEST_ATTRIBUTES:
            self._too_long = True
            self._encoded.clear()
        elif not self._too_long:
            self._encoded += fragment

    async def finish(self) -> Reply:
        if self._too_long:
            log.warning("mpps.refused", reason="attribute list longer than 16 MiB")
            return Reply(PROCESSING_FAILURE)
        syntax = UID(self._request.transfer_syntax)
        try:
            attributes = decode(
                BytesIO(bytes(self._encoded)),
                syntax.is_implicit_VR,
                syntax.is_little_endian,
                syntax.is_deflated,
            )
        except Exception as error:  # pydicom's many ways of saying "cannot decode"
            log.warning("mpps.refused", reason=f"undecodable attributes: {error}")
            return Reply(PROCESSING_FAILURE)
        return await self._mpps.answer(self._request, attributes)

    def discard(self) -> None:
        self._encoded.clear()
