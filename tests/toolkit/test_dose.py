"""The dose of a CT study as a Radiation Dose SR says it (a TID 10011 tree built here as a
modality writes one, read back from its file), as CT image headers say it (pydicom's own CT
files), and what a hostile report (deep nesting, values that are no numbers, sequences
written as text, a huge sequence) comes to: what could be read, quickly, never a crash."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from shared.dicom.dose import (
    DOSE_REPORT_CLASSES,
    MAX_DEPTH,
    MAX_ITEMS,
    Quantity,
    dose_summary,
    image_ctdi_vol,
    read_dose_report,
)
from shared.dicom.header import HeaderReadError, read_header

RDSR = "1.2.840.10008.5.1.4.1.1.88.67"
NUMERIC_VALUE = 0x0040A30A
CONTENT_SEQUENCE = 0x0040A730


def pydicom_file(name: str) -> Path:
    """One of pydicom's test files (pydicom's own, or the pydicom-data package's)."""
    found = get_testdata_file(name)
    assert isinstance(found, str), f"{name} is not among pydicom's test files"
    return Path(found)


def code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def container(value: str, meaning: str, *children: Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CONTAINER"
    item.ConceptNameCodeSequence = Sequence([code(value, meaning)])
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = Sequence(list(children))
    return item


def num(value: str, meaning: str, amount: float | str, unit: str) -> Dataset:
    measured = Dataset()
    measured.NumericValue = str(amount)
    measured.MeasurementUnitsCodeSequence = Sequence([code(unit, unit, "UCUM")])
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = Sequence([code(value, meaning)])
    item.MeasuredValueSequence = Sequence([measured])
    return item


def ct_acquisition(ctdi_vol: float | str, dlp: float | str) -> Dataset:
    """One irradiation event (TID 10013): its CT Dose container holds CTDIvol and DLP."""
    return container(
        "113819",
        "CT Acquisition",
        container(
            "113829",
            "CT Dose",
            num("113830", "Mean CTDIvol", ctdi_vol, "mGy"),
            num("113838", "DLP", dlp, "mGy.cm"),
        ),
    )


def dose_report(*content: Dataset, study_uid: str | None = None) -> Dataset:
    """An X-Ray Radiation Dose SR document (TID 10011) with ``content`` under its root."""
    report = Dataset()
    report.SOPClassUID, report.SOPInstanceUID = RDSR, generate_uid()
    report.StudyInstanceUID = study_uid or generate_uid()
    report.Modality, report.ValueType = "SR", "CONTAINER"
    report.ConceptNameCodeSequence = Sequence([code("113701", "X-Ray Radiation Dose Report")])
    report.ContinuityOfContent = "SEPARATE"
    report.ContentSequence = Sequence(list(content))
    return report


def ct_dose_report(study_uid: str | None = None) -> Dataset:
    """Accumulated DLP 456.7 mGy.cm over two irradiation events, as a CT writes it."""
    return dose_report(
        container(
            "113811",
            "CT Accumulated Dose Data",
            num("113812", "Total Number of Irradiation Events", 2, "{events}"),
            num("113813", "CT Dose Length Product Total", 456.7, "mGy.cm"),
        ),
        ct_acquisition(12.3, 300.1),
        ct_acquisition(8.2, 156.6),
        study_uid=study_uid,
    )


def save(report: Dataset, path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = report.SOPClassUID
    meta.MediaStorageSOPInstanceUID = report.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    report.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    report.save_as(path, enforce_file_format=True)
    return path


def deeply_nested(path: Path, depth: int) -> Path:
    """A dose report whose content tree nests ``depth`` levels, written byte by byte with
    undefined lengths as a hostile sender would (pydicom's writer cannot write it)."""
    save(dose_report(), path)
    opened = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    opened += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closed = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    written = path.read_bytes()
    # The root's own (empty) Content Sequence is the data set's last element: replace it.
    empty = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0)
    assert written.endswith(empty)
    path.write_bytes(written[: -len(empty)] + opened * depth + closed * depth)
    return path


def test_a_ct_dose_report_gives_its_total_dlp_and_each_event_read_back_from_its_file(
    tmp_path: Path,
) -> None:
    assert RDSR in DOSE_REPORT_CLASSES and "1.2.840.10008.5.1.4.1.1.88.76" in DOSE_REPORT_CLASSES
    path = save(ct_dose_report(), tmp_path / "dose.dcm")
    report = read_dose_report(read_header(path))
    assert report.complete and report.found
    assert report.total_dlp == Quantity(456.7, "mGy.cm")
    assert report.total_dlp.text == "456.7 mGy\N{MIDDLE DOT}cm"
    assert [(e.mean_ctdi_vol, e.dlp) for e in report.events] == [
        (Quantity(12.3, "mGy"), Quantity(300.1, "mGy.cm")),
        (Quantity(8.2, "mGy"), Quantity(156.6, "mGy.cm")),
    ]
    assert dose_summary(report, [Quantity(99, "mGy")]) == {
        "Total DLP": "456.7 mGy\N{MIDDLE DOT}cm",
        "CTDIvol": "8.2\N{EN DASH}12.3 mGy",  # the report's, not the images'
        "Source": "dose report",
    }


def test_without_a_report_the_images_give_ctdi_vol_and_never_a_dlp() -> None:
    """``bad_sequence.dcm`` (pydicom-data) is a Siemens CT header with its CTDIvol;
    ``CT_small.dcm`` (pydicom) has none."""
    siemens = read_header(pydicom_file("bad_sequence.dcm"))
    small = read_header(pydicom_file("CT_small.dcm"))
    ctdi = image_ctdi_vol(siemens)
    assert ctdi is not None and ctdi.text == "29.8 mGy"
    assert image_ctdi_vol(small) is None
    assert dose_summary(None, [ctdi]) == {"CTDIvol": "29.8 mGy", "Source": "image headers"}
    low = Quantity(5.04, "mGy")
    assert dose_summary(None, [ctdi, low]) == {
        "CTDIvol": "5\N{EN DASH}29.8 mGy",
        "Source": "image headers",
    }
    assert dose_summary(None, []) == {}
    # A report with a total but no events: its DLP, the images' CTDIvol, both sources named.
    total_only = read_dose_report(
        dose_report(
            container(
                "113811",
                "CT Accumulated Dose Data",
                num("113813", "CT Dose Length Product Total", 1203.45, "mGy.cm"),
            )
        )
    )
    assert dose_summary(total_only, [ctdi]) == {
        "Total DLP": "1203.5 mGy\N{MIDDLE DOT}cm",
        "CTDIvol": "29.8 mGy",
        "Source": "dose report and image headers",
    }


@pytest.mark.parametrize("name", ["reportsi.dcm", "test-SR.dcm"])
def test_a_report_that_is_no_dose_report_gives_no_dose(name: str) -> None:
    """pydicom's Basic Text SR and Comprehensive SR: read whole, and no dose in them."""
    report = read_dose_report(read_header(pydicom_file(name)))
    assert report.complete and not report.found


def test_an_enhanced_ct_gives_ctdi_vol_from_its_functional_groups() -> None:
    exposure = Dataset()
    exposure.CTDIvol = 0.45
    frame = Dataset()
    frame.CTExposureSequence = Sequence([exposure])
    enhanced = Dataset()
    enhanced.PerFrameFunctionalGroupsSequence = Sequence([frame])
    found = image_ctdi_vol(enhanced)
    assert found is not None and found.text == "0.45 mGy"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, for the values meant to be bad
def test_values_that_are_no_numbers_and_sequences_written_as_text_are_passed_over() -> None:
    not_a_number = num("113813", "CT Dose Length Product Total", 0, "mGy.cm")
    raw = RawDataElement(Tag(NUMERIC_VALUE), "DS", 4, b"abc ", 0, False, True)
    not_a_number.MeasuredValueSequence[0][NUMERIC_VALUE] = raw
    infinite = ct_acquisition("inf", "NaN")
    as_text = container("113819", "CT Acquisition")
    del as_text.ContentSequence
    as_text.add_new(CONTENT_SEQUENCE, "LO", "not a sequence")
    no_value = num("113830", "Mean CTDIvol", 1, "mGy")
    no_value.MeasuredValueSequence = Sequence([])
    unnamed = Dataset()
    unnamed.ValueType = "NUM"
    unnamed.add_new(0x0040A043, "LO", "a concept name that is text")  # should be a sequence
    units = ct_acquisition(7.5, 100)
    unit_item = units.ContentSequence[0].ContentSequence[0].MeasuredValueSequence[0]
    unit_item.MeasurementUnitsCodeSequence[0].CodeValue = "mGy\x07" + "x" * 40
    report = read_dose_report(
        dose_report(
            not_a_number,
            container("113811", "CT Accumulated Dose Data", not_a_number),
            infinite,
            as_text,
            container("113819", "CT Acquisition", no_value, unnamed),
            units,
            num("113813", "CT Dose Length Product Total", 88.8, "mGy.cm"),
        )
    )
    assert report.complete
    assert report.total_dlp == Quantity(88.8, "mGy.cm")  # the first that is a number
    assert [(e.mean_ctdi_vol, e.dlp) for e in report.events] == [
        (None, None),
        (None, None),
        (None, None),
        (Quantity(7.5, ""), Quantity(100, "mGy.cm")),  # a unit that cannot be shown is left out
    ]
    assert read_dose_report(Dataset()).found is False


def test_a_deep_nesting_stops_at_the_depth_bound_with_what_was_found_above_it() -> None:
    inner = ct_acquisition(3.3, 44)
    for _ in range(5000):
        inner = container("113829", "CT Dose", inner)
    started = time.monotonic()
    report = read_dose_report(
        dose_report(
            inner,
            ct_acquisition(12.3, 300.1),
            container(
                "113811",
                "CT Accumulated Dose Data",
                num("113813", "CT Dose Length Product Total", 300.1, "mGy.cm"),
            ),
        )
    )
    assert time.monotonic() - started < 1
    assert not report.complete
    assert report.total_dlp == Quantity(300.1, "mGy.cm")
    assert [e.mean_ctdi_vol for e in report.events] == [Quantity(12.3, "mGy")]
    # Within the bound the nesting is read whole.
    shallow = ct_acquisition(3.3, 44)
    for _ in range(MAX_DEPTH - 4):
        shallow = container("113829", "CT Dose", shallow)
    within = read_dose_report(dose_report(shallow))
    assert within.complete and within.events[0].mean_ctdi_vol == Quantity(3.3, "mGy")


def test_a_huge_sequence_is_read_no_further_than_the_item_bound() -> None:
    many = [num("121071", "Finding", 1, "1")] * (MAX_ITEMS + 5000)  # one item, many times
    events = container("113819", "CT Acquisition", *many)
    started = time.monotonic()
    report = read_dose_report(
        dose_report(
            container(
                "113811",
                "CT Accumulated Dose Data",
                num("113813", "CT Dose Length Product Total", 1.5, "mGy.cm"),
            ),
            events,
            ct_acquisition(12.3, 300.1),  # beyond the bound: not read
        )
    )
    assert time.monotonic() - started < 5
    assert not report.complete
    assert report.total_dlp == Quantity(1.5, "mGy.cm")
    # The last event is reached (it was taken before the bound), its values beyond it.
    assert [(e.mean_ctdi_vol, e.dlp) for e in report.events] == [(None, None), (None, None)]
    top = read_dose_report(dose_report(*many, ct_acquisition(12.3, 300.1)))
    assert not top.complete and top.events == ()


def test_a_deeply_nested_file_fails_to_read_as_an_exception_not_a_crash(tmp_path: Path) -> None:
    """pydicom reads nested sequences by recursion: a file nested 10000 levels raises (a
    RecursionError), which the scan sheet catches; 100 levels are read, and bounded here."""
    readable = read_header(deeply_nested(tmp_path / "deep100.dcm", 100))
    report = read_dose_report(readable)
    assert not report.complete and not report.found
    with pytest.raises(HeaderReadError, match="nested too deep"):
        read_header(deeply_nested(tmp_path / "deep10000.dcm", 10_000))
