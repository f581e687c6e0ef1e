"""The audit trail beyond the index: its events as DICOM audit messages (PS3.15 A.5) and
their transport over syslog to an IHE ATNA audit record repository, among its copies."""
