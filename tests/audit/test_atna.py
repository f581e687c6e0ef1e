"""The audit trail's events as DICOM audit messages (PS3.15 A.5): each message is parsed back
and read as an audit record repository would: event, outcome, who took part in which role,
which studies, instances and patient."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.audit.atna import audit_message
from shared.db.audit import Action, AuditEvent
from tests.audit.reading import (
    AT,
    CT,
    MR,
    PATIENT,
    PEER,
    STUDIES,
    code,
    detail_value,
    event_attribute,
    event_of,
    instances_by_class,
    message,
    objects,
    participants,
    role,
)


@pytest.mark.parametrize(
    ("action", "type_code"),
    [(Action.APPLICATION_STARTED, "110120"), (Action.APPLICATION_STOPPED, "110121")],
)
def test_application_activity(action: Action, type_code: str) -> None:
    detail = {
        "roles": ["receiver", "router"],
        "host": "pacs1",
        "pid": 4242,
        "version": "0.1.0",
        "ae_title": "STORE_SCP",
    }
    root = message(action, detail)
    assert event_of(root) == ("110100", "E", "0")
    assert code(root.find("EventIdentification/EventTypeCode"))[0] == type_code
    (application,) = participants(root).values()
    assert application.get("UserID") == "STORE_SCP"
    assert role(application) == "110150"
    assert application.get("AlternativeUserID") == "AETITLES=STORE_SCP"
    assert application.get("UserName") == "store-server (receiver, router) pid 4242 version 0.1.0"
    assert application.get("NetworkAccessPointID") == "pacs1"
    assert application.get("NetworkAccessPointTypeCode") == "1"
    source = root.find("AuditSourceIdentification")
    assert source is not None
    assert source.get("AuditSourceID") == "STORE_SCP"
    assert source.get("AuditEnterpriseSiteID") == "Radiology West"
    assert code(source.find("AuditSourceTypeCode"))[0] == "4"
    when = datetime.fromisoformat(event_attribute(root, "EventDateTime"))
    assert when == AT and when.utcoffset() == timedelta(hours=1)


def test_an_association_accepted_is_a_login() -> None:
    root = message(
        Action.ASSOCIATION_ACCEPTED, {**PEER, "peer_port": 51000, "tls": True, "user": "jsmith"}
    )
    assert event_of(root) == ("110114", "E", "0")
    assert code(root.find("EventIdentification/EventTypeCode")) == ("110122", "DCM", "Login")
    them, us = participants(root)["MR_ROOM2"], participants(root)["STORE_SCP"]
    assert them.get("UserIsRequestor") == "true" and us.get("UserIsRequestor") == "false"
    assert them.get("NetworkAccessPointID") == "192.0.2.7"
    assert them.get("NetworkAccessPointTypeCode") == "2"
    assert them.get("UserName") == "jsmith"
    assert root.find("EventIdentification/EventOutcomeDescription") is None


def test_an_association_refused_is_a_failed_login_with_its_reason() -> None:
    root = message(Action.ASSOCIATION_REFUSED, {**PEER, "reason": "calling AE title not known"})
    assert event_of(root) == ("110114", "E", "4")
    assert (
        root.findtext("EventIdentification/EventOutcomeDescription") == "calling AE title not known"
    )


def test_instances_transferred_to_us() -> None:
    root = message(Action.TRANSFERRED, {**PEER, **PATIENT, "count": 4, "studies": STUDIES})
    assert event_of(root) == ("110104", "C", "0")
    them, us = participants(root)["MR_ROOM2"], participants(root)["STORE_SCP"]
    assert (role(them), them.get("UserIsRequestor")) == ("110153", "true")
    assert (role(us), us.get("UserIsRequestor")) == ("110152", "false")
    studies = objects(root, "110180")
    assert [s.get("ParticipantObjectID") for s in studies] == ["1.2.3.100", "1.2.3.200"]
    assert all(
        (s.get("ParticipantObjectTypeCode"), s.get("ParticipantObjectTypeCodeRole")) == ("2", "3")
        for s in studies
    )
    assert instances_by_class(studies[0]) == {
        CT: (2, ["1.2.3.100.1", "1.2.3.100.2"]),
        MR: (1, ["1.2.3.100.3"]),
    }
    assert instances_by_class(studies[1]) == {MR: (1, ["1.2.3.200.1"])}
    (patient,) = objects(root, "2")
    assert code(patient.find("ParticipantObjectIDTypeCode")) == ("2", "RFC-3881", "Patient Number")
    assert (
        patient.get("ParticipantObjectTypeCode"),
        patient.get("ParticipantObjectTypeCodeRole"),
    ) == ("1", "1")
    assert patient.get("ParticipantObjectID") == "PID-42"
    assert patient.findtext("ParticipantObjectName") == "DOE^JANE"


def test_instance_uids_can_be_left_out_and_their_counts_stay() -> None:
    event = AuditEvent(
        Action.TRANSFERRED, "receiver", detail={**PEER, **PATIENT, "studies": STUDIES}
    )
    text = audit_message(event, source_id="STORE_SCP", instance_uids=False)
    assert text is not None
    study = objects(ET.fromstring(text), "110180")[0]
    assert instances_by_class(study) == {CT: (2, []), MR: (1, [])}


def test_an_empty_patient_id_is_kept_empty() -> None:
    root = message(
        Action.TRANSFERRED, {**PEER, "patient_id": "", "patient_name": "", "studies": STUDIES}
    )
    (patient,) = objects(root, "2")
    assert patient.get("ParticipantObjectID") == ""


def test_a_c_move_sent_for_a_third_party() -> None:
    detail = {
        **PEER,
        **PATIENT,
        "operation": "C-MOVE",
        "destination": "VIEWER",
        "destination_address": "192.0.2.9",
        "count": 3,
        "failed": 1,
        "studies": STUDIES[:1],
    }
    root = message(Action.EXPORTED, detail)
    assert event_of(root) == ("110104", "R", "4")
    found = participants(root)
    assert set(found) == {"STORE_SCP", "VIEWER", "MR_ROOM2"}
    assert role(found["STORE_SCP"]) == "110153" and role(found["VIEWER"]) == "110152"
    assert found["VIEWER"].get("NetworkAccessPointID") == "192.0.2.9"
    assert [p for p, e in found.items() if e.get("UserIsRequestor") == "true"] == ["MR_ROOM2"]
    assert [s.get("ParticipantObjectID") for s in objects(root, "110180")] == ["1.2.3.100"]
    assert objects(root, "2")[0].get("ParticipantObjectID") == "PID-42"


def test_a_c_get_is_requested_by_its_destination() -> None:
    detail = {
        **PEER,
        **PATIENT,
        "operation": "C-GET",
        "destination": "MR_ROOM2",
        "destination_address": "192.0.2.7",
        "failed": 0,
        "studies": STUDIES,
    }
    root = message(Action.EXPORTED, detail)
    assert event_of(root) == ("110104", "R", "0")
    found = participants(root)
    assert set(found) == {"STORE_SCP", "MR_ROOM2"}
    assert found["MR_ROOM2"].get("UserIsRequestor") == "true"
    assert found["STORE_SCP"].get("UserIsRequestor") == "false"


def test_a_forward_is_an_export_to_a_network_destination() -> None:
    detail = {
        **PATIENT,
        "operation": "forward",
        "calling_ae": "STORE_SCP",
        "destination": "ARCHIVE",
        "destination_address": "archive.example.org",
        "count": 4,
        "failed": 0,
        "studies": STUDIES,
    }
    root = message(Action.EXPORTED, detail)
    assert event_of(root) == ("110106", "R", "0")
    roles = {role(p): p for p in root.iter("ActiveParticipant")}
    assert roles["110153"].get("UserID") == "STORE_SCP"
    assert roles["110153"].get("UserIsRequestor") == "true"
    assert roles["110152"].get("UserID") == "ARCHIVE"
    media = roles["110154"]
    assert media.get("UserIsRequestor") == "false"
    assert media.get("NetworkAccessPointID") == "archive.example.org"
    assert media.get("NetworkAccessPointTypeCode") == "1"
    assert code(media.find("MediaIdentifier/MediaType"))[0] == "110037"
    assert len(objects(root, "110180")) == 2


@pytest.mark.parametrize(("status", "outcome"), [(0, "0"), (0xA700, "4")])
def test_a_query_and_its_keys(status: int, outcome: str) -> None:
    keys = {"PatientName": "DOE*", "StudyDate": "20240101-20240131"}
    detail = {
        **PEER,
        "sop_class_uid": "1.2.840.10008.5.1.4.1.2.2.1",
        "level": "STUDY",
        "keys": keys,
        "matches": 3,
        "status": status,
    }
    root = message(Action.QUERY, detail)
    assert event_of(root) == ("110112", "E", outcome)
    found = participants(root)
    assert (role(found["MR_ROOM2"]), found["MR_ROOM2"].get("UserIsRequestor")) == ("110153", "true")
    assert (role(found["STORE_SCP"]), found["STORE_SCP"].get("UserIsRequestor")) == (
        "110152",
        "false",
    )
    (asked,) = objects(root, "110181")
    assert asked.get("ParticipantObjectID") == "1.2.840.10008.5.1.4.1.2.2.1"
    assert (asked.get("ParticipantObjectTypeCode"), asked.get("ParticipantObjectTypeCodeRole")) == (
        "2",
        "3",
    )
    assert json.loads(base64.b64decode(asked.findtext("ParticipantObjectQuery", ""))) == keys
    assert detail_value(asked, "QueryLevel") == "STUDY"


def test_a_refused_instance_is_a_failed_transfer() -> None:
    detail = {**PEER, "status": "0xA700", "reason": "out of resources", "sop_class_uid": CT}
    root = message(Action.REFUSED, detail, sop_instance_uid="1.2.3.100.9")
    assert event_of(root) == ("110104", "C", "4")
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "out of resources"
    assert instances_by_class(objects(root, "110180")[0]) == {CT: (1, ["1.2.3.100.9"])}
    assert participants(root)["MR_ROOM2"].get("UserIsRequestor") == "true"


def test_a_quarantined_instance_is_a_failed_transfer() -> None:
    root = message(
        Action.QUARANTINED,
        {"reason": "no Study Instance UID", "path": "/q/x.dcm"},
        sop_instance_uid="1.2.3.9",
    )
    assert event_of(root) == ("110104", "C", "4")
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "no Study Instance UID"
    assert instances_by_class(objects(root, "110180")[0]) == {"": (1, ["1.2.3.9"])}


@pytest.mark.parametrize(
    ("action", "fields", "detail"),
    [
        (
            Action.REPLACED,
            {"sop_instance_uid": "1.2.3.100.1"},
            {"account": "smith", "path": "a/b.dcm"},
        ),
        (Action.REFILED, {}, {"from_account": "smith", "to_account": "jones", "files": 3}),
    ],
)
def test_replaced_and_refiled_are_instances_updated(
    action: Action, fields: dict[str, str], detail: dict[str, Any]
) -> None:
    root = message(action, detail, study_instance_uid="1.2.3.100", **fields)
    assert event_of(root) == ("110103", "U", "0")
    (study,) = objects(root, "110180")
    assert study.get("ParticipantObjectID") == "1.2.3.100"
    if action is Action.REFILED:
        assert detail_value(study, "to_account") == "jones"


def test_an_account_changed_is_a_user_security_attributes_alert() -> None:
    detail = {"account": "smith", "change": "added", "physicians": ["SMITH^JOHN"], "by": "admin"}
    root = message(Action.ACCOUNT_CHANGED, detail)
    assert event_of(root) == ("110113", "E", "0")
    assert code(root.find("EventIdentification/EventTypeCode"))[0] == "110137"
    (account,) = objects(root, "11")
    assert account.get("ParticipantObjectID") == "smith"
    assert account.get("ParticipantObjectTypeCodeRole") == "13"
    assert detail_value(account, "Alert Description") == "account smith added: SMITH^JOHN"
    assert participants(root)["admin"].get("UserIsRequestor") == "false"


@pytest.mark.parametrize(
    ("alert", "type_code"),
    [
        ("tls_handshake", "110126"),
        ("certificate", "110126"),
        ("unknown_ae", "110126"),
        ("user_identity", "110126"),
        ("malformed_pdu", "110132"),
    ],
)
def test_security_alerts(alert: str, type_code: str) -> None:
    detail = {
        "alert": alert,
        "reason": "it went wrong",
        "peer_address": "198.51.100.4",
        "peer_port": 40000,
    }
    root = message(Action.SECURITY_ALERT, detail)
    assert event_of(root) == ("110113", "E", "4")
    assert code(root.find("EventIdentification/EventTypeCode"))[0] == type_code
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "it went wrong"
    peer = participants(root)["198.51.100.4"]
    assert peer.get("NetworkAccessPointID") == "198.51.100.4"
    assert all(p.get("UserIsRequestor") == "false" for p in root.iter("ActiveParticipant"))
    (node,) = objects(root, "110182")
    assert node.get("ParticipantObjectID") == "198.51.100.4"
    assert detail_value(node, "Alert Description") == f"{alert}: it went wrong"
