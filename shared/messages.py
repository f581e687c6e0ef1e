"""Every message on the bus, as a versioned pydantic model.

A message's ``kind`` is its routing key. ``version`` is bumped when a field changes meaning or
a required field is added; consumers reject versions they do not know (the message goes to the
dead-letter queue, where an operator can see it) instead of guessing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# Any printable value up to the UI length limit: real archives hold non-conformant UIDs (some
# anonymisers write hashes), and refusing them would lose instances a PACS accepts. They are
# keys, never path components, so nothing else about them is trusted.
UID_PATTERN = re.compile(r"^[\x21-\x5b\x5d-\x7e]{1,64}$")
UID = Annotated[str, StringConstraints(pattern=UID_PATTERN.pattern)]
CONFORMANT_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


class MessageError(ValueError):
    """A payload that is not a message we understand: a poison message."""


class Message(BaseModel):
    """Common envelope fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]
    version: int = 1
    sent_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


# The elements filing reads, which the receiver hands on as it read them (FilingHeader).
FILING_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "RequestingPhysician",
    "ReferringPhysicianName",
    "SeriesNumber",
    "EchoNumbers",
    "InstanceNumber",
    "SeriesDescription",
    "ProtocolName",
    "Modality",
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "StudyID",
)


class FilingHeader(BaseModel):
    """The filing elements of a data set's top level, as encoded in the file: the receiver
    walked every element before answering Success, so the router need not read the file
    again. ``elements``: tag as 8 hex digits, to its VR ('' when implicit) and its value's
    bytes as Latin-1 text (one character per byte, so nothing is lost)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    implicit: bool
    little: bool
    elements: dict[str, tuple[str, str]]


class InstanceReceived(Message):
    """The receiver has fsynced an instance into the spool; the router files it.

    ``filing_header`` is absent when some filing element was too long or not a plain value
    to hand on: the router then reads the file."""

    kind: ClassVar[str] = "instance.received"
    version: Literal[1] = 1
    sop_instance_uid: UID
    sop_class_uid: UID
    transfer_syntax_uid: UID
    spool_name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}\.dcm$")
    size: int = Field(ge=0)
    received_at: AwareDatetime
    calling_ae: str
    called_ae: str
    peer_address: str
    peer_port: int
    filing_header: FilingHeader | None = None


class InstanceFiled(Message):
    """The router has filed an instance into its account's tree; the indexer indexes it."""

    kind: ClassVar[str] = "instance.filed"
    version: Literal[1] = 1
    sop_instance_uid: UID
    sop_class_uid: UID
    study_instance_uid: UID
    series_instance_uid: UID
    transfer_syntax_uid: UID
    account: str
    path: str = Field(description="relative to the accounts root")
    size: int = Field(ge=0)
    replaced: bool = False
    received_at: AwareDatetime
    calling_ae: str


class InstanceRefused(Message):
    """The receiver refused a C-STORE (it told the sender why); the router audits it.

    The receiver has no database, so its refusals reach the audit trail this way. The UIDs
    are whatever the request and the data set said, valid or not, cut to their bound.
    """

    kind: ClassVar[str] = "instance.refused"
    version: Literal[1] = 1
    sop_instance_uid: str = Field(max_length=64)
    sop_class_uid: str = Field(max_length=64)
    status: int = Field(ge=0, le=0xFFFF)
    reason: str = Field(max_length=2000)
    quarantined: str | None = Field(default=None, description="the file kept, if any")
    received_at: AwareDatetime
    calling_ae: str
    called_ae: str
    peer_address: str
    peer_port: int


class StudyComplete(Message):
    """A study has stopped growing (or was declared complete); its scan sheet is due."""

    kind: ClassVar[str] = "study.complete"
    version: Literal[1] = 1
    study_instance_uid: UID
    reason: Literal["stable", "mpps", "manual"]
    last_received_at: AwareDatetime | None = None


class StudyReady(Message):
    """A study's scan sheet is written (or was already current): what comes after a study
    (the forwarder's hooks) may run."""

    kind: ClassVar[str] = "study.ready"
    version: Literal[1] = 1
    study_instance_uid: UID
    account: str
    folder: str = Field(description="the study folder, relative to the accounts root")
    sheet_for: AwareDatetime | None = Field(
        default=None, description="the study's last received time the sheet shows"
    )


MppsStatus = Literal["IN PROGRESS", "COMPLETED", "DISCONTINUED"]


class MppsUpdated(Message):
    """The receiver got an MPPS N-CREATE or N-SET; the scan-sheet service records the step.

    An N-SET carries only what changed: ``status`` and ``referenced_sop_instance_uids`` are
    None when the request did not set them (an N-SET's Performed Series Sequence replaces the
    whole list, so a given list is the step's complete list).
    """

    kind: ClassVar[str] = "mpps.updated"
    version: Literal[1] = 1
    step_uid: UID
    operation: Literal["create", "set"]
    status: MppsStatus | None
    study_instance_uids: list[UID] = Field(default_factory=list, max_length=100)
    referenced_sop_instance_uids: list[UID] | None = Field(default=None, max_length=100_000)
    received_at: AwareDatetime
    calling_ae: str


# What a process without the index reports for the audit trail (shared.db.audit.Action values).
ReportedAction = Literal[
    "application_started",
    "application_stopped",
    "association_accepted",
    "association_refused",
    "transferred",
    "query",
    "exported",
    "security_alert",
]


class AuditReported(Message):
    """An audit event of the receiver's (which has no database); the router records it.

    ``detail`` is the action's detail as :mod:`shared.db.audit` describes it."""

    kind: ClassVar[str] = "audit.reported"
    version: Literal[1] = 1
    action: ReportedAction
    service: str = Field(max_length=32)
    at: AwareDatetime
    study_instance_uid: str | None = Field(default=None, max_length=64)
    sop_instance_uid: str | None = Field(default=None, max_length=64)
    detail: dict[str, object] = Field(default_factory=dict)


MESSAGE_TYPES: dict[str, type[Message]] = {
    model.kind: model
    for model in (
        InstanceReceived,
        InstanceRefused,
        InstanceFiled,
        StudyComplete,
        StudyReady,
        MppsUpdated,
        AuditReported,
    )
}


def decode(kind: str, body: bytes) -> Message:
    """Parse a body published under routing key ``kind``; raise :class:`MessageError`."""
    model = MESSAGE_TYPES.get(kind)
    if model is None:
        raise MessageError(f"unknown message kind {kind!r}")
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise MessageError(f"invalid {kind} message: {error}") from None
