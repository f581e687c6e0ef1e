"""What the router reads from a spooled instance: the few header values filing needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from services.router.naming import StudyFacts, positive_number
from services.router.physicians import named, pn_values

# Only these are parsed: the router's read is on the hot path of every instance, and reading
# the whole header (then decoding every text value) costs two to three times as much.
FILING_TAGS = [
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
]


class Unroutable(ValueError):
    """The instance cannot be filed: it goes to quarantine with this reason."""


@dataclass(frozen=True)
class Header:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_uid: str
    series_uid: str
    requesting: list[str]
    referring: list[str]
    series_number: int | None
    echo: int
    instance_number: int | None
    series_description: str
    protocol: str
    modality: str
    study: StudyFacts


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else ""
    return str(value).strip()


def read_header(path: Path) -> Header:
    """The filing facts of ``path``; :class:`Unroutable` when they cannot be read."""
    try:
        dataset = dcmread(path, stop_before_pixels=True, specific_tags=FILING_TAGS)
        dataset.decode()  # Specific Character Set applied to every text value, now
        study_uid = _text(dataset, "StudyInstanceUID")
        series_uid = _text(dataset, "SeriesInstanceUID")
        sop_uid = _text(dataset, "SOPInstanceUID") or str(
            dataset.file_meta.get("MediaStorageSOPInstanceUID", "")
        )
        header = Header(
            sop_instance_uid=sop_uid,
            sop_class_uid=_text(dataset, "SOPClassUID"),
            transfer_syntax_uid=str(dataset.file_meta.get("TransferSyntaxUID", "")),
            study_uid=study_uid,
            series_uid=series_uid,
            requesting=named(pn_values(dataset.get("RequestingPhysician"))),
            referring=named(pn_values(dataset.get("ReferringPhysicianName"))),
            series_number=positive_number(dataset.get("SeriesNumber")),
            echo=positive_number(dataset.get("EchoNumbers")) or 1,
            instance_number=positive_number(dataset.get("InstanceNumber")),
            series_description=_text(dataset, "SeriesDescription"),
            protocol=_text(dataset, "ProtocolName"),
            modality=_text(dataset, "Modality"),
            study=StudyFacts(
                study_instance_uid=study_uid,
                patient_name=_text(dataset, "PatientName"),
                patient_id=_text(dataset, "PatientID"),
                study_date=_text(dataset, "StudyDate"),
                study_time=_text(dataset, "StudyTime"),
                study_description=_text(dataset, "StudyDescription"),
                accession=_text(dataset, "AccessionNumber"),
                study_id=_text(dataset, "StudyID"),
                modality=_text(dataset, "Modality"),
            ),
        )
    # The receiver checked the structure; what is left is content pydicom cannot interpret
    # (a bad character set, a value of the wrong VR): any such failure makes it unroutable.
    except Exception as error:
        raise Unroutable(f"header cannot be read: {type(error).__name__}: {error}") from error
    for name, value in (("Study", study_uid), ("Series", series_uid), ("SOP", sop_uid)):
        if not value or len(value) > 64:
            raise Unroutable(f"{name} Instance UID is missing or longer than 64 characters")
    return header
