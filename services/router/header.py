"""What the router reads from a spooled instance: the few header values filing needs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from services.router.naming import StudyFacts, positive_number
from services.router.physicians import named, pn_values
from shared.dicom import header as dicom_header
from shared.dicom.values import as_text
from shared.messages import UID_PATTERN

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


# pydicom raises these for a value it cannot convert (a malformed IS, a bad character set).
_BAD_VALUE = (ValueError, TypeError, AttributeError, KeyError, IndexError, LookupError)


def _value(dataset: Dataset, keyword: str) -> object:
    """A value as pydicom gives it; one it cannot convert counts as absent."""
    try:
        value = dataset.get(keyword)
    except _BAD_VALUE:
        return None
    # A text element written with a binary VR (OB, UN): its bytes, read as Latin-1.
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _text(dataset: Dataset, keyword: str) -> str:
    return as_text(_value(dataset, keyword), first_only=True)


def read_header(path: Path) -> Header:
    """The filing facts of ``path``; :class:`Unroutable` when the file cannot be read.

    The receiver answered Success only for a data set it could decode that names its study,
    series and instance, so that every instance it accepted can be filed: here an odd value
    (a number that is not one, a name of the wrong VR, an unknown character set) is read as
    absent and the instance is filed anyway.
    """
    try:
        # Bounded: a huge value is skipped on disk, a deflated data set inflated as a stream.
        dataset = dicom_header.read_header(path, specific_tags=FILING_TAGS)
    # The file changed on disk since the receiver walked it (corruption, a hand's edit).
    except Exception as error:
        raise Unroutable(f"header cannot be read: {type(error).__name__}: {error}") from error
    # The Specific Character Set applied to every text value, now; if it cannot be, values
    # stay in the default repertoire, characters it lacks replaced.
    with contextlib.suppress(*_BAD_VALUE):
        dataset.decode()
    study_uid = _text(dataset, "StudyInstanceUID")
    series_uid = _text(dataset, "SeriesInstanceUID")
    sop_uid = _text(dataset, "SOPInstanceUID") or str(
        dataset.file_meta.get("MediaStorageSOPInstanceUID", "")
    )
    for name, value in (("Study", study_uid), ("Series", series_uid), ("SOP", sop_uid)):
        if not UID_PATTERN.match(value):
            raise Unroutable(f"{name} Instance UID is missing or not a UID")
    return Header(
        sop_instance_uid=sop_uid,
        sop_class_uid=_text(dataset, "SOPClassUID"),
        transfer_syntax_uid=str(dataset.file_meta.get("TransferSyntaxUID", "")),
        study_uid=study_uid,
        series_uid=series_uid,
        requesting=named(pn_values(_value(dataset, "RequestingPhysician"))),
        referring=named(pn_values(_value(dataset, "ReferringPhysicianName"))),
        series_number=positive_number(_value(dataset, "SeriesNumber")),
        echo=positive_number(_value(dataset, "EchoNumbers")) or 1,
        instance_number=positive_number(_value(dataset, "InstanceNumber")),
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
