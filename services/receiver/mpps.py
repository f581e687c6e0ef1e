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
from typing import Any, cast

from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from services.receiver.intake import Publish
from shared.bus import PublishError
from shared.log import get_logger
from shared.messages import MppsUpdated

log = get_logger("services.receiver")

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
# pydicom raises these for a data set it cannot decode or a value it cannot convert.
_BAD_DATA_SET = (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError)

Answer = tuple[int, Dataset | None]


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


def _answer(event: Any, operation: str, step_uid: str, publish: Publish) -> Answer:
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    context = {"step_uid": step_uid, "operation": operation, "calling_ae": calling_ae}
    try:
        attributes = event.attribute_list if operation == "create" else event.modification_list
        message = describe(step_uid, operation, attributes, calling_ae)
    except InvalidStep as error:
        log.warning("mpps.refused", reason=str(error), **context)
        return INVALID_ATTRIBUTE_VALUE, None
    except _BAD_DATA_SET as error:
        log.warning("mpps.refused", reason=f"undecodable attributes: {error}", **context)
        return PROCESSING_FAILURE, None
    try:
        publish(message)
    except PublishError as error:
        log.error("mpps.publish_failed", error=str(error), **context)
        return PROCESSING_FAILURE, None
    log.info(
        "mpps.received",
        status=message.status,
        studies=message.study_instance_uids,
        referenced=len(message.referenced_sop_instance_uids or []),
        **context,
    )
    reply = Dataset()
    if operation == "create" and event.request.AffectedSOPInstanceUID is None:
        reply.AffectedSOPInstanceUID = step_uid  # pynetdicom moves it into the response
    return SUCCESS, reply


def on_n_create(event: Any, publish: Publish) -> Answer:
    """EVT_N_CREATE: a modality starts a step (the UID is ours to give if it sent none)."""
    step_uid = str(event.request.AffectedSOPInstanceUID or generate_uid())
    return _answer(event, "create", step_uid, publish)


def on_n_set(event: Any, publish: Publish) -> Answer:
    """EVT_N_SET: a modality updates, completes or discontinues a step."""
    return _answer(event, "set", str(event.request.RequestedSOPInstanceUID), publish)
