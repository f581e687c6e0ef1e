"""The index's column values, read from the header's DICOM JSON, are the values pydicom reads
from the same header (``Dataset.get``, at the top level or in the first functional group
item), over every file in pydicom's test data and character set files."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from services.indexer.header import (
    BULK_DATA_MIN_LENGTH,
    INDEXED_KEYWORDS,
    MAX_HEADER_VALUE,
    _stored,
    describe,
)
from shared.dicom.header import HeaderReadError, read_header
from shared.dicom.json_model import header_json
from shared.dicom.values import as_text, storable
from tests.bus.test_contract import filed
from tests.indexer.test_header_json import corpus

MESSAGE = filed(1)
BAD = (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError)


def found(dataset: Dataset, keyword: str) -> Any:
    """pydicom's value: at the top level, else in the first functional group macro."""
    try:
        if keyword in dataset:
            return dataset.get(keyword)
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            for macro in (dataset.get(groups) or [None])[0] or []:
                if macro.VR == "SQ" and macro.value and keyword in macro.value[0]:
                    return macro.value[0].get(keyword)
    except BAD:
        return None
    return None


def number(dataset: Dataset, keyword: str) -> float | None:
    value = found(dataset, keyword)
    if isinstance(value, MultiValue | list):
        value = value[0] if value else None
    try:
        result = float(value) if value not in (None, "") else None
    except BAD:
        return None
    return result if result is not None and math.isfinite(result) else None


def by_pydicom(path: Path) -> dict[str, Any]:
    dataset = read_header(path)
    values: dict[str, Any] = {}
    for keyword in INDEXED_KEYWORDS:
        values[keyword] = (as_text(found(dataset, keyword)) or None, number(dataset, keyword))
    return values


def spacing(text: str | None) -> list[float] | None:
    """Pixel Spacing as numbers: the index keeps each DS as its number reads (``0.390625``,
    where the file may say ``3.906250e-01``); one that is not a number is not kept."""
    try:
        return [float(part) for part in text.split("\\")] if text else None
    except ValueError:
        return None


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_columns_are_pydicoms_values(source: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            theirs = by_pydicom(source)
        except HeaderReadError:
            pytest.skip("not a readable DICOM file")
        ours = describe(read_header(source), MESSAGE, 0, "")
    columns = {**ours.patient, **ours.study, **ours.series, **ours.instance}
    columns["description"] = ours.series["description"]
    texts = {
        "PatientID": "patient_id",
        "PatientName": "name",
        "PatientSex": "sex",
        "StudyTime": "study_time",
        "StudyDescription": "description",
        "AccessionNumber": "accession_number",
        "RequestingPhysician": "requesting_physician",
        "ReferringPhysicianName": "referring_physician",
        "InstitutionName": "institution",
        "StationName": "station",
        "SeriesDescription": "description",
        "Modality": "modality",
        "ProtocolName": "protocol",
        "BodyPartExamined": "body_part",
    }
    for keyword, column in texts.items():
        table = ours.study if keyword == "StudyDescription" else columns
        expected = theirs[keyword][0] or (None if keyword != "PatientID" else "")
        assert table[column] == expected, keyword
    assert spacing(columns["pixel_spacing"]) == spacing(theirs["PixelSpacing"][0])
    numbers = {
        "RepetitionTime": "repetition_time",
        "EchoTime": "echo_time",
        "InversionTime": "inversion_time",
        "FlipAngle": "flip_angle",
        "SliceThickness": "slice_thickness",
        "SpacingBetweenSlices": "spacing_between_slices",
        "MagneticFieldStrength": "field_strength",
    }
    for keyword, column in numbers.items():
        assert columns[column] == theirs[keyword][1], keyword
    for keyword, column in {
        "SeriesNumber": "number",  # the series' number; the study has none
        "Rows": "rows",
        "Columns": "columns",
        "InstanceNumber": "instance_number",
        "EchoNumbers": "echo_number",
    }.items():
        value = theirs[keyword][1]
        expected = int(value) if value is not None and abs(value) < 2**31 else None
        assert columns[column] == expected, keyword


def cleaned(node: Any) -> Any:
    """The stored header as plainly stated: bulk data and values over the limit left out,
    texts storable, numbers that are not finite as null."""
    if isinstance(node, dict):
        return {
            key: cleaned(value)
            for key, value in node.items()
            if not (isinstance(value, dict) and ("BulkDataURI" in value or too_long(value)))
        }
    if isinstance(node, list):
        return [cleaned(value) for value in node]
    if isinstance(node, str):
        return storable(node)
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def too_long(element: dict[str, Any]) -> bool:
    values = element.get("Value")
    if element.get("vr") == "SQ" or not isinstance(values, list):
        return False
    return sum(len(str(value)) for value in values) > MAX_HEADER_VALUE


HOSTILE = {
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "A" * 70_000}]},
    "00100020": {"vr": "LO", "Value": ["NUL\x00inside", "lone \udcff surrogate"]},
    "00181030": {"vr": "LO", "Value": ["x" * 9000] * 8},
    "00181031": {"vr": "LO", "Value": ["x" * 8192] * 8},
    "00280030": {"vr": "DS", "Value": [float("nan"), float("inf"), 0.5]},
    "00281050": {"vr": "DS", "Value": list(range(20_000))},
    "00281051": {"vr": "DS", "Value": [-1.2345678901234567e-308] * 2621},
    "00281052": {"vr": "DS", "Value": [-1.2345678901234567e-308] * 2800},
    "00281053": {"vr": "US", "Value": list(range(2700))},
    "7FE00010": {"vr": "OW", "BulkDataURI": ""},
    "00400275": {"vr": "SQ", "Value": [{"00321060": {"vr": "LO", "Value": ["y" * 70_000]}}]},
    "00080090": {"vr": "PN"},
}


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_the_stored_header_is_the_header_cleaned(source: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header = header_json(read_header(source), BULK_DATA_MIN_LENGTH)
        except HeaderReadError:
            pytest.skip("not a readable DICOM file")
    assert _stored(header) == cleaned(header)


def test_hostile_values_are_stored_as_the_index_can_keep_them() -> None:
    stored = _stored(HOSTILE)
    assert stored == cleaned(HOSTILE)
    left_out = {"00100010", "00181030", "00281050", "00281052", "7FE00010"}
    assert set(HOSTILE) - set(stored) == left_out
    assert stored["00100020"]["Value"] == ["NULinside", "lone ? surrogate"]
    assert stored["00280030"]["Value"] == [None, None, 0.5]
    assert stored["00400275"]["Value"] == [{}]
