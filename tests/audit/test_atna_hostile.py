"""What must never break a DICOM audit message: hostile values (escaped, or replaced when XML
cannot carry them), rows older than the keys a newer row has, details of the wrong shape; and
what is never sent as one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from shared.audit.atna import audit_message
from shared.db.audit import Action, AuditEvent
from tests.audit.reading import (
    PEER,
    STUDIES,
    event_attribute,
    message,
    objects,
    participants,
)

BOOKKEEPING = [
    Action.RECEIVED,
    Action.FILED,
    Action.DUPLICATE,
    Action.INDEXED,
    Action.SHEET_WRITTEN,
    Action.HOOK_RAN,
]


@pytest.mark.parametrize("action", BOOKKEEPING)
def test_per_instance_bookkeeping_is_not_sent(action: Action) -> None:
    event = AuditEvent(action, "router", "1.2.3.4", "1.2.3", {"account": "smith"})
    assert audit_message(event, source_id="STORE_SCP") is None


def test_a_refiled_studys_rows_per_instance_are_left_to_the_studys_row() -> None:
    row = AuditEvent(Action.REFILED, "router", "1.2.3.100.1", "1.2.3.100", {"message": {}})
    assert audit_message(row, source_id="STORE_SCP") is None


def test_hostile_values_arrive_escaped_and_readable() -> None:
    hostile = {"calling_ae": 'EVIL"AE\n<x>', "called_ae": "STORE_SCP", "peer_address": "192.0.2.66"}
    name = "<script>&\"'../../etc"
    detail = {
        **hostile,
        "patient_id": "../../etc/passwd",
        "patient_name": name,
        "studies": STUDIES[:1],
    }
    text = audit_message(
        AuditEvent(Action.TRANSFERRED, "receiver", detail=detail), source_id="STORE_SCP"
    )
    assert text is not None and "<script>" not in text
    root = ET.fromstring(text)
    (patient,) = objects(root, "2")
    assert patient.findtext("ParticipantObjectName") == name
    assert patient.get("ParticipantObjectID") == "../../etc/passwd"
    assert participants(root)['EVIL"AE\n<x>'].get("AlternativeUserID") == 'AETITLES=EVIL"AE\n<x>'


def test_characters_xml_cannot_carry_are_replaced() -> None:
    detail = {
        **PEER,
        "patient_id": "P\x001",
        "patient_name": "DOE\x01^JANE\x1b\ud800",
        "studies": [],
    }
    root = message(Action.TRANSFERRED, detail)
    (patient,) = objects(root, "2")
    assert patient.findtext("ParticipantObjectName") == "DOE\ufffd^JANE\ufffd\ufffd"
    assert patient.get("ParticipantObjectID") == "P\ufffd1"


@pytest.mark.parametrize("action", [a for a in Action if a not in BOOKKEEPING])
def test_rows_without_the_detail_keys_still_give_a_message(action: Action) -> None:
    root = message(action, {}, at=datetime(2020, 1, 1, 12, 0))  # naive, as SQLite gives it back
    when = datetime.fromisoformat(event_attribute(root, "EventDateTime"))
    assert when == datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
    assert list(root.iter("ActiveParticipant"))


def test_details_of_the_wrong_shape_are_ignored() -> None:
    detail = {
        **PEER,
        "studies": [None, "x", {"study_instance_uid": "1.2", "instances": "none"}],
        "keys": ["not", "a", "map"],
        "failed": "?",
    }
    for action in (Action.TRANSFERRED, Action.EXPORTED, Action.QUERY):
        text = audit_message(AuditEvent(action, "x", detail=detail), source_id="S")
        assert text is not None and ET.fromstring(text).tag == "AuditMessage"
    (study,) = objects(message(Action.TRANSFERRED, detail), "110180")
    assert study.get("ParticipantObjectID") == "1.2"
    assert study.find("ParticipantObjectDescription") is None
