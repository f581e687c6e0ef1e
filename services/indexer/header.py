"""What the index keeps of a filed instance: its rows' values and its header as DICOM JSON.

The file's bytes give the content hash (read in chunks), and the data set up to the pixel
data (read in bounded memory, :mod:`shared.dicom.header`) gives the patient, study, series and
instance attributes and the full header in the DICOM JSON model (PS3.18 F.2) with bulk data
left out. Values are cut to the width of their column and
cleaned of what PostgreSQL refuses (NUL characters, NaN), so that one odd value can never keep
an instance out of the index.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from shared.dicom.header import HeaderReadError, read_header
from shared.dicom.json_model import header_json
from shared.dicom.values import as_text, storable
from shared.folding import fold
from shared.messages import InstanceFiled

# Values that pydicom cannot convert (a malformed IS or DS, an unknown character set) raise
# one of these; the attribute is then left empty rather than the instance unindexed.
_BAD_VALUE = (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError)
BULK_DATA_MIN_LENGTH = 1024
DIGEST_CHUNK = 1 << 20
MAX_HEADER_VALUE = 65_536  # characters of one element's text or numbers in the stored header
# Study-level attributes whose disagreement between a study's instances is recorded.
STUDY_ATTRIBUTES = (
    "study_date",
    "study_time",
    "description",
    "accession_number",
    "requesting_physician",
    "referring_physician",
    "institution",
    "station",
)


class HeaderError(Exception):
    """The file is not a DICOM instance that can be indexed."""


@dataclass(frozen=True)
class IndexedInstance:
    """One filed instance as the index stores it, column values per table."""

    message: InstanceFiled
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def read_instance(path: Path, message: InstanceFiled) -> IndexedInstance:
    """Read and describe the file; ``FileNotFoundError`` when it is gone, else HeaderError."""
    size, content_hash = _digest(path)
    try:
        dataset = read_header(path)
    except HeaderReadError as error:
        raise HeaderError(f"{message.path}: not a readable DICOM file: {error}") from error
    patient_id = _text(dataset, "PatientID") or ""
    issuer = _text(dataset, "IssuerOfPatientID") or ""
    if not patient_id:
        # A study without a Patient ID gets a patient of its own (docs/decisions.md, Indexer)
        # instead of sharing one anonymous patient with every other such study.
        issuer = "~study " + hashlib.sha1(message.study_instance_uid.encode()).hexdigest()
    name = _text(dataset, "PatientName")
    return IndexedInstance(
        message=message,
        patient={
            "identity": patient_identity(patient_id, issuer),
            "patient_id": patient_id,
            "issuer": issuer,
            "name": name,
            "birth_date": _date(dataset, "PatientBirthDate"),
            "sex": _text(dataset, "PatientSex"),
            "search_text": fold(f"{name or ''} {patient_id}"),
        },
        study={
            "study_instance_uid": message.study_instance_uid,
            "study_date": _date(dataset, "StudyDate"),
            "study_time": _text(dataset, "StudyTime"),
            "description": _text(dataset, "StudyDescription"),
            "accession_number": _text(dataset, "AccessionNumber"),
            "requesting_physician": _text(dataset, "RequestingPhysician"),
            "referring_physician": _text(dataset, "ReferringPhysicianName"),
            "institution": _text(dataset, "InstitutionName"),
            "station": _text(dataset, "StationName"),
            "account": message.account,
            "study_folder": study_folder(message.path),
        },
        series={
            "series_instance_uid": message.series_instance_uid,
            "number": _integer(dataset, "SeriesNumber"),
            "description": _text(dataset, "SeriesDescription"),
            "modality": _text(dataset, "Modality"),
            "protocol": _text(dataset, "ProtocolName"),
            "body_part": _text(dataset, "BodyPartExamined"),
            "repetition_time": _number(dataset, "RepetitionTime"),
            "echo_time": _number(dataset, "EchoTime"),
            "inversion_time": _number(dataset, "InversionTime"),
            "flip_angle": _number(dataset, "FlipAngle"),
            "slice_thickness": _number(dataset, "SliceThickness"),
            "spacing_between_slices": _number(dataset, "SpacingBetweenSlices"),
            "pixel_spacing": _text(dataset, "PixelSpacing"),
            "rows": _integer(dataset, "Rows"),
            "columns": _integer(dataset, "Columns"),
            "field_strength": _number(dataset, "MagneticFieldStrength"),
            "sequence_name": _text(dataset, "SequenceName") or _text(dataset, "PulseSequenceName"),
        },
        instance={
            "sop_instance_uid": message.sop_instance_uid,
            "sop_class_uid": message.sop_class_uid,
            "instance_number": _integer(dataset, "InstanceNumber"),
            "echo_number": _integer(dataset, "EchoNumbers"),
            "transfer_syntax_uid": message.transfer_syntax_uid,
            "path": message.path,
            "size": size,
            "content_hash": content_hash,
            "received_at": message.received_at,
            "calling_ae": message.calling_ae or None,
            "header": dicom_json(dataset),
        },
    )


def _digest(path: Path) -> tuple[int, str]:
    """The file's size and SHA-256, read in chunks: a 1 GB instance costs 1 MB here."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def patient_identity(patient_id: str, issuer: str) -> str:
    """The key of a patient row: a digest of the whole Patient ID and issuer, whatever their
    length, so that no value is ever cut to fit a key (docs/decisions.md, Indexer)."""
    return hashlib.sha256(f"{patient_id}\x00{issuer}".encode("utf-8", "replace")).hexdigest()


def study_folder(path: str) -> str:
    """The study folder, relative to the accounts root: everything before ``/Dicom/``."""
    parts = PurePosixPath(path).parts
    if "Dicom" in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index("Dicom")
        return "/".join(parts[:last])
    # Not the router's layout (filed by hand): the folder that holds the series folder.
    return "/".join(parts[:-2]) or "/".join(parts[:-1])


def dicom_json(dataset: Dataset) -> dict[str, Any]:
    """The data set in the DICOM JSON model, without bulk data, storable as JSONB."""
    cleaned = _clean(header_json(dataset, BULK_DATA_MIN_LENGTH))
    assert isinstance(cleaned, dict)
    return cleaned


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _clean(value)
            for key, value in node.items()
            # Bulk data is left out altogether: the file on disk holds it.
            if not (isinstance(value, dict) and ("BulkDataURI" in value or _bulky(value)))
        }
    if isinstance(node, list):
        return [_clean(value) for value in node]
    if isinstance(node, str):
        return storable(node)
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def _bulky(element: dict[str, Any]) -> bool:
    """A text or numeric value too long for the index (a sequence's items are judged on their
    own): left out like bulk data, so one huge value cannot swell every header query."""
    values = element.get("Value")
    if element.get("vr") == "SQ" or not isinstance(values, list):
        return False
    return sum(len(str(value)) for value in values) > MAX_HEADER_VALUE


def _find(dataset: Dataset, keyword: str) -> Any:
    """A value at the top level, else in the first functional group item (enhanced images)."""
    try:
        if keyword in dataset:
            return dataset.get(keyword)
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            for macro in (dataset.get(groups) or [None])[0] or []:
                if macro.VR == "SQ" and macro.value and keyword in macro.value[0]:
                    return macro.value[0].get(keyword)
    except _BAD_VALUE:
        return None
    return None


def _text(dataset: Dataset, keyword: str) -> str | None:
    return as_text(_find(dataset, keyword)) or None


def _date(dataset: Dataset, keyword: str) -> str | None:
    """A DA value; ``2026-11-25`` and ``2026.11.25`` (the old ACR-NEMA form) read as the date."""
    text = _text(dataset, keyword)
    if text is not None:
        digits = text.replace(".", "").replace("-", "")
        if len(digits) == 8 and digits.isdigit():
            return digits
    return text


def _number(dataset: Dataset, keyword: str) -> float | None:
    value = _find(dataset, keyword)
    if isinstance(value, MultiValue | list):
        value = value[0] if value else None
    try:
        number = float(value) if value not in (None, "") else None
    except _BAD_VALUE:
        return None
    return number if number is not None and math.isfinite(number) else None


def _integer(dataset: Dataset, keyword: str) -> int | None:
    number = _number(dataset, keyword)
    # An integer column: a value beyond 32 bits is not a real instance or series number.
    return int(number) if number is not None and abs(number) < 2**31 else None
