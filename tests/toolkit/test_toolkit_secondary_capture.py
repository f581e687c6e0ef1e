"""Pictures to Secondary Capture: valid for dciodvfy, readable by pydicom and DCMTK."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydantic import ValidationError
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from services.cli.main import main
from shared.dicom.convert import ConversionError, dcm_to_jpg
from shared.dicom.secondary_capture import PatientStudy, jpg_to_dcm
from tests.support.dcmtk import dciodvfy_errors, dcmdump

PATIENT = PatientStudy(
    patient_name="Müller^Anna",
    patient_id="P-001",
    patient_birth_date="1970-01-02",
    patient_sex="F",
    accession_number="ACC1",
    referring_physician="Who^John^^Dr",
    requesting_physician="House^Gregory",
    study_description="Dermatology photo",
    series_description="Left forearm",
)


@pytest.fixture
def colour_jpeg(tmp_path: Path) -> Path:
    rows, columns = np.mgrid[0:240, 0:320]
    picture = np.stack([columns * 255 // 320, rows * 255 // 240, (rows + columns) % 256], -1)
    path = tmp_path / "photo.jpg"
    Image.fromarray(picture.astype(np.uint8)).save(path, quality=90)
    return path


def test_baseline_jpeg_is_kept_encapsulated_and_valid(colour_jpeg: Path, tmp_path: Path) -> None:
    written = jpg_to_dcm(colour_jpeg, PATIENT, tmp_path / "sc.dcm")
    dataset = pydicom.dcmread(written.path)
    assert dataset.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert colour_jpeg.read_bytes() in dataset.PixelData  # the very same JPEG stream
    assert dataset.PhotometricInterpretation == "YBR_FULL_422"
    assert (dataset.Rows, dataset.Columns) == (240, 320)
    assert dataset.PatientName == "Müller^Anna" and dataset.PatientBirthDate == "19700102"
    assert dataset.SOPInstanceUID == written.sop_instance_uid
    assert dataset.LossyImageCompression == "01"
    assert dciodvfy_errors(written.path) == []
    dump = dcmdump(written.path)
    assert "(0010,0010) PN [Müller^Anna]" in dump and "=SecondaryCaptureImageStorage" in dump


def test_converts_back_to_a_picture_close_to_the_original(
    colour_jpeg: Path, tmp_path: Path
) -> None:
    written = jpg_to_dcm(colour_jpeg, PATIENT, tmp_path / "sc.dcm")
    [back] = dcm_to_jpg(written.path, tmp_path / "back.jpg", quality=95)
    original = np.asarray(Image.open(colour_jpeg), dtype=float)
    assert np.abs(np.asarray(Image.open(back), dtype=float) - original).mean() < 2


def test_grey_and_progressive_pictures(tmp_path: Path) -> None:
    grey = tmp_path / "grey.jpg"
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1))).save(grey, quality=95)
    assert (
        pydicom.dcmread(
            jpg_to_dcm(grey, PATIENT, tmp_path / "g.dcm").path
        ).PhotometricInterpretation
        == "MONOCHROME2"
    )
    progressive = tmp_path / "progressive.jpg"
    Image.open(grey).convert("RGB").save(progressive, progressive=True)
    written = jpg_to_dcm(progressive, PATIENT, tmp_path / "p.dcm")
    dataset = pydicom.dcmread(written.path)
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # not process 1
    assert dataset.pixel_array.shape == (64, 256, 3)
    assert dciodvfy_errors(written.path) == []


def test_into_an_existing_study(colour_jpeg: Path, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.1234"
    patient = PATIENT.model_copy(update={"study_instance_uid": study})
    written = jpg_to_dcm(colour_jpeg, patient, tmp_path / "sc.dcm")
    assert pydicom.dcmread(written.path).StudyInstanceUID == study == written.study_instance_uid


def test_bad_details_and_bad_pictures_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="accession_number"):
        PatientStudy(patient_name="A^B", patient_id="1", accession_number="X" * 17)
    with pytest.raises(ValidationError, match="study_instance_uid"):
        PatientStudy(patient_name="A^B", patient_id="1", study_instance_uid="1.2.abc")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ConversionError, match="not a picture"):
        jpg_to_dcm(text, PATIENT, tmp_path / "x.dcm")


def test_convert_dcm_command(
    colour_jpeg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.dcm"
    code = main(
        [
            "convert",
            "dcm",
            str(colour_jpeg),
            str(out),
            "--patient-name",
            "Doe^Jane",
            "--patient-id",
            "77",
            "--sex",
            "F",
        ]
    )
    assert code == 0 and pydicom.dcmread(out).PatientID == "77"
    assert (
        main(
            [
                "convert",
                "dcm",
                str(colour_jpeg),
                str(out),
                "--patient-name",
                "Doe",
                "--patient-id",
                "7",
                "--sex",
                "Q",
            ]
        )
        == 2
    )
    assert "--sex" in capsys.readouterr().err
    thumbnail = tmp_path / "tn.png"
    assert main(["convert", "thumbnail", str(out), str(thumbnail), "--size", "64"]) == 0
    assert Image.open(thumbnail).size == (64, 48)
