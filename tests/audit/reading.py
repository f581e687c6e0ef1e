"""Reading a DICOM audit message back as an audit record repository would: its event, who
took part in which role, which objects."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.audit.atna import audit_message
from shared.db.audit import Action, AuditEvent

AT = datetime(2024, 3, 1, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=1)))
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
PEER = {"calling_ae": "MR_ROOM2", "called_ae": "STORE_SCP", "peer_address": "192.0.2.7"}
STUDIES = [
    {
        "study_instance_uid": "1.2.3.100",
        "instances": [
            {"sop_class_uid": CT, "sop_instance_uid": "1.2.3.100.1"},
            {"sop_class_uid": CT, "sop_instance_uid": "1.2.3.100.2"},
            {"sop_class_uid": MR, "sop_instance_uid": "1.2.3.100.3"},
        ],
    },
    {
        "study_instance_uid": "1.2.3.200",
        "instances": [{"sop_class_uid": MR, "sop_instance_uid": "1.2.3.200.1"}],
    },
]
PATIENT = {"patient_id": "PID-42", "patient_name": "DOE^JANE"}


def message(action: Action, detail: dict[str, Any] | None = None, **fields: Any) -> ET.Element:
    event = AuditEvent(action, "receiver", detail=detail or {}, at=fields.pop("at", AT), **fields)
    text = audit_message(event, source_id="STORE_SCP", site="Radiology West")
    assert text is not None
    return ET.fromstring(text)


def code(element: ET.Element | None) -> tuple[str, str, str]:
    assert element is not None
    return (
        element.get("csd-code", ""),
        element.get("codeSystemName", ""),
        element.get("originalText", ""),
    )


def event_attribute(root: ET.Element, name: str) -> str:
    event = root.find("EventIdentification")
    assert event is not None
    return event.get(name, "")


def event_of(root: ET.Element) -> tuple[str, str, str]:
    """EventID code, EventActionCode, EventOutcomeIndicator."""
    event_id = code(root.find("EventIdentification/EventID"))[0]
    return (
        event_id,
        event_attribute(root, "EventActionCode"),
        event_attribute(root, "EventOutcomeIndicator"),
    )


def participants(root: ET.Element) -> dict[str, ET.Element]:
    return {p.get("UserID", ""): p for p in root.iter("ActiveParticipant")}


def role(participant: ET.Element) -> str:
    return code(participant.find("RoleIDCode"))[0]


def objects(root: ET.Element, id_type: str) -> list[ET.Element]:
    return [
        o
        for o in root.iter("ParticipantObjectIdentification")
        if code(o.find("ParticipantObjectIDTypeCode"))[0] == id_type
    ]


def instances_by_class(study: ET.Element) -> dict[str, tuple[int, list[str]]]:
    return {
        s.get("UID", ""): (
            int(s.get("NumberOfInstances", "-1")),
            [i.get("UID", "") for i in s.iter("Instance")],
        )
        for s in study.iter("SOPClass")
    }


def detail_value(thing: ET.Element, kind: str) -> str:
    values = [
        d.get("value", "") for d in thing.iter("ParticipantObjectDetail") if d.get("type") == kind
    ]
    assert len(values) == 1, f"one {kind!r} detail"
    return base64.b64decode(values[0]).decode()
