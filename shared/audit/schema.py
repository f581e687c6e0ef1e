"""A DICOM audit message's content (PS3.15 A.5.1, the ``AuditMessage`` schema) and its XML.

The XML is built with ElementTree, so every value is escaped; characters XML 1.0 cannot carry
at all (control characters, lone surrogates) become U+FFFD.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.audit.codes import APPLICATION_SERVER, SUCCESS, Code

# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class Participant:
    """An ActiveParticipant."""

    user_id: str
    requestor: bool
    role: Code | None = None
    ae_title: str = ""  # AlternativeUserID "AETITLES=..." for a DICOM application (A.5.2.2)
    name: str = ""
    address: str = ""
    media: Code | None = None


@dataclass
class ParticipantObject:
    """A ParticipantObjectIdentification; ``type`` and ``role`` are its TypeCode and
    TypeCodeRole."""

    id: str
    type: str
    role: str | None
    id_type: Code
    # The schema wants a name or a query (A.5.1): one of the two is always given.
    name: str = ""
    query: bytes | None = None
    details: list[tuple[str, str]] = field(default_factory=list)
    sop_classes: dict[str, list[str]] = field(default_factory=dict)  # class UID: instances


@dataclass
class Message:
    """An AuditMessage but for its time and its source, which :func:`render` adds."""

    event_id: Code
    action: str
    outcome: str = SUCCESS
    types: tuple[Code, ...] = ()
    description: str = ""
    participants: list[Participant] = field(default_factory=list)
    objects: list[ParticipantObject] = field(default_factory=list)


def render(
    message: Message, at: datetime, source_id: str, site: str | None, instance_uids: bool
) -> str:
    """The message as XML, in the schema's element order, from the audit source
    ``source_id`` (an application server process, A.5.1.2.1) at ``site``."""
    root = ET.Element("AuditMessage")
    event = _element(
        root,
        "EventIdentification",
        EventActionCode=message.action,
        EventDateTime=_when(at),
        EventOutcomeIndicator=message.outcome,
    )
    _code(event, "EventID", message.event_id)
    for type_code in message.types:
        _code(event, "EventTypeCode", type_code)
    if message.description:
        _element(event, "EventOutcomeDescription").text = _clean(message.description)
    for who in message.participants:
        attributes = {"UserID": who.user_id}
        if who.ae_title:
            attributes["AlternativeUserID"] = f"AETITLES={who.ae_title}"
        if who.name:
            attributes["UserName"] = who.name
        attributes["UserIsRequestor"] = "true" if who.requestor else "false"
        if who.address:
            attributes["NetworkAccessPointID"] = who.address
            attributes["NetworkAccessPointTypeCode"] = _address_type(who.address)
        participant = _element(root, "ActiveParticipant", **attributes)
        if who.role:
            _code(participant, "RoleIDCode", who.role)
        if who.media:
            _code(_element(participant, "MediaIdentifier"), "MediaType", who.media)
    source = _element(root, "AuditSourceIdentification", AuditSourceID=source_id)
    if site:
        source.set("AuditEnterpriseSiteID", _clean(site))
    _code(source, "AuditSourceTypeCode", APPLICATION_SERVER)
    for thing in message.objects:
        _participant_object(root, thing, instance_uids)
    return ET.tostring(root, encoding="unicode")


def _participant_object(root: ET.Element, thing: ParticipantObject, instance_uids: bool) -> None:
    attributes = {"ParticipantObjectID": thing.id, "ParticipantObjectTypeCode": thing.type}
    if thing.role:
        attributes["ParticipantObjectTypeCodeRole"] = thing.role
    element = _element(root, "ParticipantObjectIdentification", **attributes)
    _code(element, "ParticipantObjectIDTypeCode", thing.id_type)
    if thing.query is not None:
        _element(element, "ParticipantObjectQuery").text = _base64(thing.query)
    else:
        _element(element, "ParticipantObjectName").text = _clean(thing.name)
    for kind, value in thing.details:
        _element(
            element,
            "ParticipantObjectDetail",
            type=kind,
            value=_base64(value.encode("utf-8", "replace")),
        )
    if thing.sop_classes:
        description = _element(element, "ParticipantObjectDescription")
        for class_uid, instances in thing.sop_classes.items():
            sop_class = _element(description, "SOPClass")
            if class_uid:  # optional in the schema: a replaced instance's class is not kept
                sop_class.set("UID", _clean(class_uid))
            sop_class.set("NumberOfInstances", str(len(instances)))
            for uid in instances if instance_uids else ():
                _element(sop_class, "Instance", UID=uid)


def _element(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, {key: _clean(value) for key, value in attributes.items()})


def _code(parent: ET.Element, tag: str, code: Code) -> None:
    attributes = {"csd-code": code.code, "codeSystemName": code.system}
    _element(parent, tag, **attributes, originalText=code.meaning)


def _when(at: datetime) -> str:
    """xsd:dateTime with its time zone (A.5.2.5); a naive time (an SQLite row) is UTC."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _address_type(address: str) -> str:
    """NetworkAccessPointTypeCode: 2 for an IP address, 1 for a machine name."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
