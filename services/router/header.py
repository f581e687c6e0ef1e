"""What the router reads from a spooled instance: the few header values filing needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from services.router.naming import StudyFacts, positive_number
from services.router.physicians import named, pn_values
from shared.dicom import header as dicom_header
from shared.dicom.json_model import element_values, header_json
from shared.dicom.values import as_text
from shared.messages import FILING_KEYWORDS, UID_PATTERN, FilingHeader, InstanceReceived

# Only these are parsed: the router's read is on the hot path of every instance, and reading
# the whole header (then decoding every text value) costs two to three times as much.
FILING_TAGS = list(FILING_KEYWORDS)


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


# Text written with a binary VR (OB, UN) up to this size is read as Latin-1 text.
INLINE_TEXT = 1024
_KEYS = {keyword: f"{tag_for_keyword(keyword):08X}" for keyword in FILING_TAGS}


class _Facts:
    """The filing tags' values, decoded from the bytes in one pass (:mod:`json_model`): a
    value that cannot be read as its VR says counts as absent, as do private dictionaries'
    odd VRs; pydicom's own conversions only where the bytes leave the VR open."""

    def __init__(self, dataset: Dataset) -> None:
        self._json = header_json(dataset, INLINE_TEXT)

    def values(self, keyword: str) -> list[object]:
        return element_values(self._json.get(_KEYS[keyword], {}))

    def text(self, keyword: str) -> str:
        return as_text(self.values(keyword), first_only=True)


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
        facts = _Facts(dataset)
    # The file changed on disk since the receiver walked it (corruption, a hand's edit).
    except Exception as error:
        raise Unroutable(f"header cannot be read: {type(error).__name__}: {error}") from error
    meta = dataset.file_meta
    return _header(
        facts,
        str(meta.get("TransferSyntaxUID", "")),
        str(meta.get("MediaStorageSOPInstanceUID", "")),
    )


def header_from_message(message: InstanceReceived, handed_on: FilingHeader) -> Header:
    """The filing facts as the receiver read them from the bytes (``filing_header``), read
    as :func:`read_header` reads them from the file."""
    dataset = Dataset()
    dataset.set_original_encoding(handed_on.implicit, handed_on.little)
    for key, (vr, text) in handed_on.elements.items():
        value = text.encode("latin-1")
        tag = BaseTag(int(key, 16))
        dataset._dict[tag] = RawDataElement(
            tag, vr or None, len(value), value, 0, handed_on.implicit, handed_on.little
        )
    try:
        facts = _Facts(dataset)
    except Exception as error:
        raise Unroutable(f"header cannot be read: {type(error).__name__}: {error}") from error
    return _header(facts, message.transfer_syntax_uid, message.sop_instance_uid)


def _header(facts: _Facts, transfer_syntax_uid: str, meta_sop_uid: str) -> Header:
    study_uid = facts.text("StudyInstanceUID")
    series_uid = facts.text("SeriesInstanceUID")
    sop_uid = facts.text("SOPInstanceUID") or meta_sop_uid
    for name, value in (("Study", study_uid), ("Series", series_uid), ("SOP", sop_uid)):
        if not UID_PATTERN.match(value):
            raise Unroutable(f"{name} Instance UID is missing or not a UID")
    return Header(
        sop_instance_uid=sop_uid,
        sop_class_uid=facts.text("SOPClassUID"),
        transfer_syntax_uid=transfer_syntax_uid,
        study_uid=study_uid,
        series_uid=series_uid,
        requesting=named(pn_values(facts.values("RequestingPhysician"))),
        referring=named(pn_values(facts.values("ReferringPhysicianName"))),
        series_number=positive_number(facts.values("SeriesNumber")),
        echo=positive_number(facts.values("EchoNumbers")) or 1,
        instance_number=positive_number(facts.values("InstanceNumber")),
        series_description=facts.text("SeriesDescription"),
        protocol=facts.text("ProtocolName"),
        modality=facts.text("Modality"),
        study=StudyFacts(
            study_instance_uid=study_uid,
            patient_name=facts.text("PatientName"),
            patient_id=facts.text("PatientID"),
            study_date=facts.text("StudyDate"),
            study_time=facts.text("StudyTime"),
            study_description=facts.text("StudyDescription"),
            accession=facts.text("AccessionNumber"),
            study_id=facts.text("StudyID"),
            modality=facts.text("Modality"),
        ),
    )
