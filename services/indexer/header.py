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

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from shared.dicom.header import HeaderReadError, read_header
from shared.dicom.json_model import element_values, header_json
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


# Every keyword a column is read from.
INDEXED_KEYWORDS = (
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "RequestingPhysician",
    "ReferringPhysicianName",
    "InstitutionName",
    "StationName",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "ProtocolName",
    "BodyPartExamined",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "Rows",
    "Columns",
    "MagneticFieldStrength",
    "SequenceName",
    "PulseSequenceName",
    "InstanceNumber",
    "EchoNumbers",
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
    try:
        return describe(dataset, message, size, content_hash)
    except RecursionError:  # a header read whole, too deep to describe
        raise HeaderError(f"{message.path}: sequences nested too deep to index") from None


def describe(
    dataset: Dataset, message: InstanceFiled, size: int, content_hash: str
) -> IndexedInstance:
    """The index's rows for a header as read: its DICOM JSON made once, the columns' values
    taken from it."""
    header = header_json(dataset, BULK_DATA_MIN_LENGTH)
    values = _Values(header)
    patient_id = values.text("PatientID") or ""
    issuer = values.text("IssuerOfPatientID") or ""
    if not patient_id:
        # A study without a Patient ID gets a patient of its own (docs/decisions.md, Indexer)
        # instead of sharing one anonymous patient with every other such study.
        issuer = "~study " + hashlib.sha1(message.study_instance_uid.encode()).hexdigest()
    name = values.text("PatientName")
    return IndexedInstance(
        message=message,
        patient={
            "identity": patient_identity(patient_id, issuer),
            "patient_id": patient_id,
            "issuer": issuer,
            "name": name,
            "birth_date": values.date("PatientBirthDate"),
            "sex": values.text("PatientSex"),
            "search_text": fold(f"{name or ''} {patient_id}"),
        },
        study={
            "study_instance_uid": message.study_instance_uid,
            "study_date": values.date("StudyDate"),
            "study_time": values.text("StudyTime"),
            "description": values.text("StudyDescription"),
            "accession_number": values.text("AccessionNumber"),
            "requesting_physician": values.text("RequestingPhysician"),
            "referring_physician": values.text("ReferringPhysicianName"),
            "institution": values.text("InstitutionName"),
            "station": values.text("StationName"),
            "account": message.account,
            "study_folder": study_folder(message.path),
        },
        series={
            "series_instance_uid": message.series_instance_uid,
            "number": values.integer("SeriesNumber"),
            "description": values.text("SeriesDescription"),
            "modality": values.text("Modality"),
            "protocol": values.text("ProtocolName"),
            "body_part": values.text("BodyPartExamined"),
            "repetition_time": values.number("RepetitionTime"),
            "echo_time": values.number("EchoTime"),
            "inversion_time": values.number("InversionTime"),
            "flip_angle": values.number("FlipAngle"),
            "slice_thickness": values.number("SliceThickness"),
            "spacing_between_slices": values.number("SpacingBetweenSlices"),
            "pixel_spacing": values.text("PixelSpacing"),
            "rows": values.integer("Rows"),
            "columns": values.integer("Columns"),
            "field_strength": values.number("MagneticFieldStrength"),
            "sequence_name": values.text("SequenceName") or values.text("PulseSequenceName"),
        },
        instance={
            "sop_instance_uid": message.sop_instance_uid,
            "sop_class_uid": message.sop_class_uid,
            "instance_number": values.integer("InstanceNumber"),
            "echo_number": values.integer("EchoNumbers"),
            "transfer_syntax_uid": message.transfer_syntax_uid,
            "path": message.path,
            "size": size,
            "content_hash": content_hash,
            "received_at": message.received_at,
            "calling_ae": message.calling_ae or None,
            "header": _stored(header),
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


def _stored(header: dict[str, Any]) -> dict[str, Any]:
    """The header as the index stores it (JSONB): without bulk data (the file on disk holds
    it) nor values too long to query (:data:`MAX_HEADER_VALUE` characters), each text as
    PostgreSQL stores it (:func:`storable`), a number that is not finite as null."""
    stored: dict[str, Any] = {}
    for key, element in header.items():
        if "BulkDataURI" in element:
            continue
        values = element.get("Value")
        if values is None:
            stored[key] = {name: _storable(value) for name, value in element.items()}
        elif element.get("vr") == "SQ":
            stored[key] = {**element, "Value": [_stored(item) for item in values]}
        elif not _too_long(values):
            stored[key] = {**element, "Value": [_storable(value) for value in values]}
    return stored


def _storable(value: Any) -> Any:
    if type(value) is str:
        return value if value.isascii() and "\x00" not in value else storable(value)
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):  # a person name's groups
        return {name: _storable(text) for name, text in value.items()}
    return value


def _too_long(values: list[Any]) -> bool:
    """A text or numeric value too long for the index: left out like bulk data, so that one
    huge value cannot swell every header query (a sequence's items are judged on their own).
    Its length is that of its values written as text: a number's never passes 25 characters,
    so only long lists of numbers are written out to be measured."""
    if len(values) == 1:  # most elements: one value
        value = values[0]
        if type(value) is str:
            return len(value) > MAX_HEADER_VALUE
        if type(value) in (int, float):
            return False
    if all(type(v) is str for v in values):
        return sum(map(len, values)) > MAX_HEADER_VALUE
    if len(values) * 25 <= MAX_HEADER_VALUE and all(type(v) in (int, float) for v in values):
        return False
    return sum(len(str(value)) for value in values) > MAX_HEADER_VALUE


_KEYS = {keyword: f"{tag_for_keyword(keyword):08X}" for keyword in INDEXED_KEYWORDS}
_FUNCTIONAL_GROUPS = ("52009229", "52009230")  # Shared, then Per-frame Functional Groups


class _Values:
    """The columns' values, read from the header's DICOM JSON: at the top level, else in the
    first item of a functional group macro (enhanced images). A value the JSON left out (it
    could not be read as its VR says) counts as absent."""

    def __init__(self, header: dict[str, Any]) -> None:
        self._header = header

    def _values(self, keyword: str) -> list[Any] | None:
        key = _KEYS[keyword]
        element = self._header.get(key)
        if element is None:
            element = self._in_functional_groups(key)
            if element is None:
                return None
        return element_values(element)

    def _in_functional_groups(self, key: str) -> dict[str, Any] | None:
        for groups in _FUNCTIONAL_GROUPS:
            items = self._header.get(groups, {}).get("Value") or [{}]
            for macro in items[0].values():
                inner = macro.get("Value") if macro.get("vr") == "SQ" else None
                if inner and isinstance(inner[0], dict) and key in inner[0]:
                    found: dict[str, Any] = inner[0][key]
                    return found
        return None

    def text(self, keyword: str) -> str | None:
        values = self._values(keyword)
        return as_text(values) or None if values is not None else None

    def date(self, keyword: str) -> str | None:
        """A DA value; ``2026-11-25`` and ``2026.11.25`` (the old ACR-NEMA form) read as the
        date."""
        text = self.text(keyword)
        if text is not None:
            digits = text.replace(".", "").replace("-", "")
            if len(digits) == 8 and digits.isdigit():
                return digits
        return text

    def number(self, keyword: str) -> float | None:
        values = self._values(keyword)
        if not values or values[0] in (None, ""):
            return None
        try:
            number = float(values[0])
        except _BAD_VALUE:
            return None
        return number if math.isfinite(number) else None

    def integer(self, keyword: str) -> int | None:
        number = self.number(keyword)
        # An integer column: a value beyond 32 bits is not a real instance or series number.
        return int(number) if number is not None and abs(number) < 2**31 else None
