"""The coded values of DICOM audit messages (PS3.15 A.5), each with where the standard
defines it: PS3.15 A.5.1 (the schema's RFC 3881 value sets), A.5.3.x (the message that uses
it) and PS3.16 Annex D (the meaning of each DCM code)."""

from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    """A coded value: ``csd-code``, ``originalText`` (the code meaning), ``codeSystemName``."""

    code: str
    meaning: str
    system: str = "DCM"


# EventID (CID 400), each with the A.5.3 message it names.
APPLICATION_ACTIVITY = Code("110100", "Application Activity")  # A.5.3.1
INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")  # A.5.3.6
INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")  # A.5.3.7
EXPORT = Code("110106", "Export")  # A.5.3.4 Data Export
QUERY = Code("110112", "Query")  # A.5.3.10
SECURITY_ALERT = Code("110113", "Security Alert")  # A.5.3.11
USER_AUTHENTICATION = Code("110114", "User Authentication")  # A.5.3.12
# EventTypeCode (CID 401; a security alert's from the context group A.5.3.11 names).
APPLICATION_START = Code("110120", "Application Start")
APPLICATION_STOP = Code("110121", "Application Stop")
LOGIN = Code("110122", "Login")
NODE_AUTHENTICATION = Code("110126", "Node Authentication")
RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
# PS3.16 spells this meaning with a lower-case "security"; the meaning is the standard's.
USER_ATTRIBUTES_CHANGED = Code("110137", "User security Attributes Changed")
# RoleIDCode, as the A.5.3 tables give them.
APPLICATION = Code("110150", "Application")
DESTINATION = Code("110152", "Destination Role ID")
SOURCE = Code("110153", "Source Role ID")
DESTINATION_MEDIA = Code("110154", "Destination Media")
# MediaType (A.5.3.4): a network destination of an export is a URI (PS3.16: "URI
# Identifier for network or other resource").
URI_MEDIA = Code("110037", "URI")
# ParticipantObjectIDTypeCode: DCM codes, and RFC 3881's (A.5.1.2.4), written as the
# standard writes them: EV (2, RFC-3881, "Patient Number").
STUDY_UID = Code("110180", "Study Instance UID")
SOP_CLASS_UID = Code("110181", "SOP Class UID")
NODE_ID = Code("110182", "Node ID")
PATIENT_NUMBER = Code("2", "Patient Number", "RFC-3881")
USER_IDENTIFIER = Code("11", "User Identifier", "RFC-3881")
# AuditSourceTypeCode (A.5.1.2.1): "4", an application server process (A.5.2 names it for a
# PACS); the system and meaning are optional in the schema and given for the reader.
APPLICATION_SERVER = Code("4", "Application Server process tier in a multi-tier system", "RFC-3881")

SUCCESS, MINOR_FAILURE = "0", "4"  # EventOutcomeIndicator (A.5.1)
PERSON, SYSTEM_OBJECT = "1", "2"  # ParticipantObjectTypeCode
PATIENT_ROLE, REPORT_ROLE, SECURITY_RESOURCE_ROLE = "1", "3", "13"  # ...TypeCodeRole
