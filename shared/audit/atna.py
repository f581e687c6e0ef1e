"""The audit trail's events as DICOM audit messages (PS3.15 A.5: the RFC 3881 ``AuditMessage``
schema as DICOM extends it, which IHE ATNA's Record Audit Event carries), for an audit record
repository.

Each action maps onto the A.5.3 message its builder names, with the codes of
:mod:`shared.audit.codes`; where the standard leaves a choice, the docstring or comment says
``Ours:`` and why. A detail that lacks a key (a row older than the key) gives an empty value
or no element, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.audit.codes import (
    APPLICATION,
    APPLICATION_ACTIVITY,
    APPLICATION_START,
    APPLICATION_STOP,
    DESTINATION,
    DESTINATION_MEDIA,
    EXPORT,
    INSTANCES_ACCESSED,
    INSTANCES_TRANSFERRED,
    LOGIN,
    MINOR_FAILURE,
    NODE_AUTHENTICATION,
    NODE_ID,
    PATIENT_NUMBER,
    PATIENT_ROLE,
    PERSON,
    QUERY,
    REPORT_ROLE,
    RESTRICTED_FUNCTION,
    SECURITY_ALERT,
    SECURITY_RESOURCE_ROLE,
    SOP_CLASS_UID,
    SOURCE,
    STUDY_UID,
    SUCCESS,
    SYSTEM_OBJECT,
    URI_MEDIA,
    USER_ATTRIBUTES_CHANGED,
    USER_AUTHENTICATION,
    USER_IDENTIFIER,
    Code,
)
from shared.audit.schema import Message, Participant, ParticipantObject, render
from shared.db.audit import Action, AuditEvent

# Ours: the alerts a failed node or user authentication raises; a malformed PDU authenticates
# nobody, and 110132 ("a use of a restricted function has been attempted", PS3.16) is the
# Security Alert type nearest to a peer making us parse what the protocol does not allow.
_ALERT_TYPES = {
    "tls_handshake": NODE_AUTHENTICATION,
    "certificate": NODE_AUTHENTICATION,
    "unknown_ae": NODE_AUTHENTICATION,
    "user_identity": NODE_AUTHENTICATION,
    "malformed_pdu": RESTRICTED_FUNCTION,
}


def audit_message(
    event: AuditEvent, *, source_id: str, site: str | None = None, instance_uids: bool = True
) -> str | None:
    """``event`` as a DICOM audit message (XML text), or None for an action not sent as one.

    ``source_id`` is the AuditSourceID (our AE title or host), ``site`` the
    AuditEnterpriseSiteID. ``instance_uids=False`` leaves out each instance's UID (counts
    stay): PS3.15 notes the list is rarely needed, and a large association's list does not
    fit in a UDP datagram.
    """
    detail: Mapping[str, Any] = event.detail if isinstance(event.detail, Mapping) else {}
    build = _BUILDERS.get(event.action)
    message = build(event, detail, source_id) if build else None
    if message is None:
        return None
    return render(message, event.at, source_id, site, instance_uids)


def _application(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.1. Ours: the process's roles, pid and version in UserName (A.5.2.3: a process's
    name), since AlternativeUserID is for AE titles (A.5.2.2); the application is not the
    requestor, as whoever launched it is not known."""
    started = event.action is Action.APPLICATION_STARTED
    roles = detail.get("roles")
    parts = ["store-server"]
    if roles:
        parts.append(f"({', '.join(map(str, roles)) if isinstance(roles, list) else roles})")
    if detail.get("pid") is not None:
        parts.append(f"pid {_text(detail, 'pid')}")
    if detail.get("version"):
        parts.append(f"version {_text(detail, 'version')}")
    name = " ".join(parts)
    application = Participant(source_id, False, APPLICATION, _text(detail, "ae_title"), name)
    application.address = _text(detail, "host")
    return Message(
        APPLICATION_ACTIVITY,
        "E",
        types=(APPLICATION_START if started else APPLICATION_STOP,),
        participants=[application],
    )


def _association(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.12: the calling AE claims an identity (requestor; its address is mandatory),
    we authenticate it. Ours: a user identity it gave is its UserName."""
    refused = event.action is Action.ASSOCIATION_REFUSED
    peer = _peer(detail, requestor=True)
    peer.name = _text(detail, "user")
    return Message(
        USER_AUTHENTICATION,
        "E",
        MINOR_FAILURE if refused else SUCCESS,
        (LOGIN,),
        _text(detail, "reason") if refused else "",
        [peer, _us(detail, source_id, requestor=False)],
    )


def _transferred(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.7 for instances we received: C, as they were new to us (a ``duplicate`` is not
    reported). A ``refused`` or ``quarantined`` instance is the same transfer that failed
    (outcome 4): received, but not accepted."""
    failed = event.action in (Action.REFUSED, Action.QUARANTINED)
    objects = _studies(detail)
    if event.sop_instance_uid and not objects:
        objects = [_study(event.study_instance_uid or "")]
        objects[0].sop_classes[_text(detail, "sop_class_uid")] = [event.sop_instance_uid]
    return Message(
        INSTANCES_TRANSFERRED,
        "C",
        MINOR_FAILURE if failed else SUCCESS,
        description=_text(detail, "reason") if failed else "",
        participants=[
            _peer(detail, requestor=True, role=SOURCE),
            _us(detail, source_id, requestor=False, role=DESTINATION),
        ],
        objects=objects + _patient(detail),
    )


def _exported(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A retrieval (A.5.3.7, R: we are not the receiver) or a forward (A.5.3.4 Data Export,
    R). One participant is the requestor: whoever asked (``calling_ae``) - the destination
    itself for a C-GET, us for a forward, else a third party (A.5.3.7's "other")."""
    forward = _text(detail, "operation") == "forward"
    ours = _text(detail, "called_ae") or (_text(detail, "calling_ae") if forward else "")
    destination = Participant(
        _text(detail, "destination"), False, DESTINATION, _text(detail, "destination"), ""
    )
    destination.address = _text(detail, "destination_address")
    us = Participant(ours or source_id, forward, SOURCE, ours)
    participants = [us, destination]
    asking = _text(detail, "calling_ae")
    if not forward and asking and asking == destination.user_id:
        destination.requestor = True
    elif not forward and (asking or detail.get("peer_address")):
        participants.append(_peer(detail, requestor=True))
    if forward:
        # A.5.3.4 wants the media: a network destination, as a URI media type.
        media = Participant(destination.user_id, False, DESTINATION_MEDIA, media=URI_MEDIA)
        media.address = destination.address
        participants.append(media)
    failed = _number(detail, "failed")
    return Message(
        EXPORT if forward else INSTANCES_TRANSFERRED,
        "R",
        SUCCESS if not failed else MINOR_FAILURE,
        description=f"{failed} of the instances could not be sent" if failed else "",
        participants=participants,
        objects=_studies(detail) + _patient(detail),
    )


def _query(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.10. Ours: the query is the keys asked for as JSON (UTF-8), not the query data
    set's bytes the standard asks for, as the trail keeps only those; so there is no
    "TransferSyntax" detail (it would name a DICOM encoding the bytes are not in), and a
    "QueryEncoding" detail says what they are."""
    status = detail.get("status")
    asked = ParticipantObject(
        _text(detail, "sop_class_uid"), SYSTEM_OBJECT, REPORT_ROLE, SOP_CLASS_UID
    )
    keys = detail.get("keys")
    asked.query = json.dumps(
        keys if isinstance(keys, Mapping) else {}, ensure_ascii=False, sort_keys=True, default=str
    ).encode("utf-8", "replace")
    asked.details.append(("QueryEncoding", "application/json"))
    if detail.get("level"):
        asked.details.append(("QueryLevel", _text(detail, "level")))
    return Message(
        QUERY,
        "E",
        SUCCESS if status in (None, 0, "0", "0x0000") else MINOR_FAILURE,
        description=_text(detail, "reason"),
        participants=[
            _peer(detail, requestor=True, role=SOURCE),
            _us(detail, source_id, requestor=False, role=DESTINATION),
        ],
        objects=[asked],
    )


def _accessed(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message | None:
    """A.5.3.6, U: an instance replaced by a newer copy, a study moved to another account.
    A refiled study's per-instance rows (the indexer's catch-up) are not sent: the study's
    row covers them. The patient (mandatory) is given when the row names one."""
    if event.action is Action.REFILED and event.sop_instance_uid:
        return None
    study = _study(event.study_instance_uid or "")
    if event.sop_instance_uid:
        study.sop_classes[""] = [event.sop_instance_uid]
    for key in ("account", "from_account", "to_account"):
        if detail.get(key):
            study.details.append((key, _text(detail, key)))
    return Message(
        INSTANCES_ACCESSED,
        "U",
        participants=[Participant(source_id, True, APPLICATION)],
        objects=[study, *_patient(detail)],
    )


def _security_alert(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.11: we report (not the requestor), the peer performed (shall not be the
    requestor); the subject is the peer's node (110182, its address) with the mandatory
    "Alert Description" detail."""
    reason = _text(detail, "reason")
    alert = _text(detail, "alert")
    peer = _peer(detail, requestor=False)
    message = Message(
        SECURITY_ALERT,
        "E",
        MINOR_FAILURE,
        (_ALERT_TYPES.get(alert, NODE_AUTHENTICATION),),
        reason,
        [_us(detail, source_id, requestor=False), peer],
    )
    if peer.address:
        node = ParticipantObject(peer.address, SYSTEM_OBJECT, None, NODE_ID, name=peer.user_id)
        held = f" ({_text(detail, 'held_back')} more held back)" if detail.get("held_back") else ""
        node.details.append(("Alert Description", f"{alert}: {reason}{held}"))
        message.objects.append(node)
    return message


def _account_changed(event: AuditEvent, detail: Mapping[str, Any], source_id: str) -> Message:
    """A.5.3.11 with 110137: an informative alert (outcome 0). Ours: the account is a
    security resource (role 13: which physician's studies land where), identified as a user
    identifier (RFC 3881 code 11); the operating-system user who made the change performed
    it (and, as A.5.3.11 says, is not marked requestor)."""
    account = _text(detail, "account")
    physicians = detail.get("physicians")
    named = ", ".join(map(str, physicians)) if isinstance(physicians, list) else ""
    change = _text(detail, "change") + (f": {named}" if named else "")
    subject = ParticipantObject(
        account, SYSTEM_OBJECT, SECURITY_RESOURCE_ROLE, USER_IDENTIFIER, account
    )
    subject.details.append(("Alert Description", f"account {account} {change}"))
    participants = [Participant(source_id, False, APPLICATION)]
    if detail.get("by"):
        participants.append(Participant(_text(detail, "by"), False))
    return Message(
        SECURITY_ALERT, "E", SUCCESS, (USER_ATTRIBUTES_CHANGED,), "", participants, [subject]
    )


# The actions left out are per-instance bookkeeping (received, filed, duplicate, indexed,
# sheet_written, hook_ran) that ``transferred``, one per association and patient, covers.
_BUILDERS = {
    Action.APPLICATION_STARTED: _application,
    Action.APPLICATION_STOPPED: _application,
    Action.ASSOCIATION_ACCEPTED: _association,
    Action.ASSOCIATION_REFUSED: _association,
    Action.TRANSFERRED: _transferred,
    Action.REFUSED: _transferred,
    Action.QUARANTINED: _transferred,
    Action.EXPORTED: _exported,
    Action.QUERY: _query,
    Action.REPLACED: _accessed,
    Action.REFILED: _accessed,
    Action.SECURITY_ALERT: _security_alert,
    Action.ACCOUNT_CHANGED: _account_changed,
}


def _peer(detail: Mapping[str, Any], *, requestor: bool, role: Code | None = None) -> Participant:
    """The calling AE, by its AE title (by its address when it gave none)."""
    ae_title, address = _text(detail, "calling_ae"), _text(detail, "peer_address")
    return Participant(ae_title or address, requestor, role, ae_title, address=address)


def _us(
    detail: Mapping[str, Any], source_id: str, *, requestor: bool, role: Code | None = None
) -> Participant:
    """This application, by the AE title called (``source_id`` when the row has none)."""
    ae_title = _text(detail, "called_ae")
    return Participant(ae_title or source_id, requestor, role, ae_title)


def _study(uid: str) -> ParticipantObject:
    # Ours: the schema wants a name or a query; a study's only name here is its UID.
    return ParticipantObject(uid, SYSTEM_OBJECT, REPORT_ROLE, STUDY_UID, name=uid)


def _studies(detail: Mapping[str, Any]) -> list[ParticipantObject]:
    objects = []
    for study in _mappings(detail.get("studies")):
        uid = _text(study, "study_instance_uid")
        thing = _study(uid)
        for instance in _mappings(study.get("instances")):
            classes = thing.sop_classes.setdefault(_text(instance, "sop_class_uid"), [])
            classes.append(_text(instance, "sop_instance_uid"))
        objects.append(thing)
    return objects


def _patient(detail: Mapping[str, Any]) -> list[ParticipantObject]:
    """The patient, when the row names one. An empty Patient ID stays empty: it is what the
    instances carry (Type 2), and ParticipantObjectID is an xsd:token, which may be empty;
    so the mandatory patient object is kept rather than dropped."""
    if "patient_id" not in detail and "patient_name" not in detail:
        return []
    name = _text(detail, "patient_name")
    return [
        ParticipantObject(_text(detail, "patient_id"), PERSON, PATIENT_ROLE, PATIENT_NUMBER, name)
    ]


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return "" if value is None else str(value)


def _number(mapping: Mapping[str, Any], key: str) -> int:
    try:
        return int(mapping.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _mappings(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
