"""Every kind of message, with full, empty and hostile details, validated against the DICOM
audit message schema (PS3.15 A.5.1.1, RELAX NG compact, its comments left out) by jing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.audit.atna import audit_message
from shared.db.audit import Action, AuditEvent
from tests.audit.reading import AT, CT, PATIENT, PEER, STUDIES

SCHEMA = """
datatypes xsd = "http://www.w3.org/2001/XMLSchema-datatypes"
other-csd-attributes =
  (attribute codeSystemName { token } | attribute codeSystemName { token }),
  attribute displayName { token }?,
  attribute originalText { token }
CodedValueType = attribute csd-code { token }, other-csd-attributes
EventIdentificationContents =
  element EventID { CodedValueType },
  element EventTypeCode { CodedValueType }*,
  attribute EventActionCode { "C" | "R" | "U" | "D" | "E" }?,
  attribute EventDateTime { xsd:dateTime },
  attribute EventOutcomeIndicator { "0" | "4" | "8" | "12" },
  element EventOutcomeDescription { text }?
AuditSourceIdentificationContents =
  attribute AuditEnterpriseSiteID { token }?,
  attribute AuditSourceID { token },
  element AuditSourceTypeCode { AuditSourceTypeCodeContent }*
AuditSourceTypeCodeContent =
  attribute csd-code { "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | token },
  other-csd-attributes?
ActiveParticipantContents =
  element RoleIDCode { CodedValueType }*,
  element MediaIdentifier { element MediaType { CodedValueType } }?,
  attribute UserID { text },
  attribute AlternativeUserID { text }?,
  attribute UserName { text }?,
  attribute UserIsRequestor { xsd:boolean },
  attribute NetworkAccessPointID { token }?,
  attribute NetworkAccessPointTypeCode { "1" | "2" | "3" | "4" | "5" }?
ValuePair = attribute type { token }, attribute value { xsd:base64Binary }
DICOMObjectDescriptionContents =
  element MPPS { attribute UID { token } }*,
  element Accession { attribute Number { token } }*,
  element SOPClass {
    element Instance { attribute UID { token } }*,
    attribute UID { token }?,
    attribute NumberOfInstances { xsd:integer }
  }*,
  element ParticipantObjectContainsStudy { element StudyIDs { attribute UID { token } }* }?,
  element Encrypted { xsd:boolean }?,
  element Anonymized { xsd:boolean }?
ParticipantObjectIdentificationContents =
  element ParticipantObjectIDTypeCode { CodedValueType },
  (element ParticipantObjectName { token } | element ParticipantObjectQuery { xsd:base64Binary }),
  element ParticipantObjectDetail { ValuePair }*,
  element ParticipantObjectDescription { DICOMObjectDescriptionContents }*,
  attribute ParticipantObjectID { token },
  attribute ParticipantObjectTypeCode { "1" | "2" | "3" | "4" }?,
  attribute ParticipantObjectTypeCodeRole {
    "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10" | "11" | "12" | "13" | "14"
    | "15" | "16" | "17" | "18" | "19" | "20" | "21" | "22" | "23" | "24" | "25" | "26"
  }?,
  attribute ParticipantObjectDataLifeCycle {
    "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15"
  }?,
  attribute ParticipantObjectSensitivity { token }?
start =
  element AuditMessage {
    element EventIdentification { EventIdentificationContents },
    element ActiveParticipant { ActiveParticipantContents }+,
    element AuditSourceIdentification { AuditSourceIdentificationContents },
    element ParticipantObjectIdentification { ParticipantObjectIdentificationContents }*
  }
"""

HOSTILE = {"calling_ae": 'A"<&>\n', "peer_address": "\x00::1", "patient_name": "<x>\x01\ud800"}
FULL: dict[Action, dict[str, Any]] = {
    Action.APPLICATION_STARTED: {"roles": ["receiver"], "host": "h", "pid": 1, "ae_title": "S"},
    Action.APPLICATION_STOPPED: {"roles": ["router"], "host": "10.0.0.1", "pid": 2},
    Action.ASSOCIATION_ACCEPTED: {**PEER, "tls": True, "user": "jsmith"},
    Action.ASSOCIATION_REFUSED: {**PEER, "reason": "unknown AE"},
    Action.TRANSFERRED: {**PEER, **PATIENT, "count": 4, "studies": STUDIES},
    Action.EXPORTED: {**PEER, **PATIENT, "operation": "C-MOVE", "destination": "V", "failed": 2},
    Action.QUERY: {**PEER, "sop_class_uid": CT, "level": "STUDY", "keys": {"PatientID": "1"}},
    Action.REFUSED: {**PEER, "status": "0xA700", "reason": "full", "sop_class_uid": CT},
    Action.QUARANTINED: {"reason": "bad", "path": "/q"},
    Action.REPLACED: {"account": "smith", "path": "p"},
    Action.REFILED: {"from_account": "smith", "to_account": "jones"},
    Action.ACCOUNT_CHANGED: {"account": "a", "change": "removed", "physicians": [], "by": "u"},
    Action.SECURITY_ALERT: {"alert": "certificate", "reason": "expired", "peer_address": "::1"},
}
FORWARD = {**PATIENT, "operation": "forward", "calling_ae": "S", "destination": "ARCHIVE"}


def every_kind() -> list[AuditEvent]:
    events = []
    for action, detail in FULL.items():
        instance = None if action is Action.REFILED else "1.2.3.4"  # a refiled study's row
        for variant in (detail, {}, {**detail, **HOSTILE}):
            events.append(AuditEvent(action, "s", instance, "1.2.3", variant, AT))
    events.append(AuditEvent(Action.EXPORTED, "forwarder", None, None, FORWARD, AT))
    events.append(AuditEvent(Action.REFILED, "router", None, None, {}, AT))
    return events


def test_every_message_is_valid_against_the_dicom_schema(tmp_path: Path) -> None:
    jing = shutil.which("jing")
    if jing is None:
        pytest.skip("jing is not installed (apt-get install jing): the schema is not checked")
    (tmp_path / "audit.rnc").write_text(SCHEMA)
    files = []
    for number, event in enumerate(every_kind()):
        text = audit_message(event, source_id="STORE_SCP", site="Site")
        assert text is not None, event.action
        files.append(tmp_path / f"{number:02d}-{event.action.value}.xml")
        files[-1].write_text(text, encoding="utf-8")
    result = subprocess.run(
        [jing, "-c", str(tmp_path / "audit.rnc"), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if "error" in line]
    assert result.returncode == 0 and not errors, "\n".join(errors or [result.stderr])
