"""Files without the 128-byte preamble are read, as dcmdump reads them; other files are not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from services.cli.main import main
from shared.dicom.files import DicomFileError, read_dataset
from tests.support.dcmtk import dataset_bytes, dcmdump
from tests.toolkit.conftest import sample_file

CT = sample_file("CT_small.dcm")


def without_preamble(tmp_path: Path) -> dict[str, Path]:
    """CT_small.dcm cut down in each way a writer may cut it, and MR_small_implicit.dcm bare."""
    whole = CT.read_bytes()
    cuts = {
        "prefix-first.dcm": whole[128:],  # 'DICM', then the file meta information
        "meta-first.dcm": whole[132:],  # the file meta information, then the data set
        "explicit-bare.dcm": dataset_bytes(CT),
        "implicit-bare.dcm": dataset_bytes(sample_file("MR_small_implicit.dcm")),
    }
    for name, content in cuts.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in cuts}


def patient_name_line(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["tags", str(path), "PatientName"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out.strip()


def test_files_without_a_preamble_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = without_preamble(tmp_path)
    whole = patient_name_line(CT, capsys)
    for name in ("prefix-first.dcm", "meta-first.dcm", "explicit-bare.dcm"):
        assert patient_name_line(cut[name], capsys) == whole, name
    implicit = patient_name_line(cut["implicit-bare.dcm"], capsys)
    assert implicit == "(0010,0010) PN PatientName: CompressedSamples^MR1"


@pytest.mark.parametrize("name", ["meta-first.dcm", "explicit-bare.dcm", "implicit-bare.dcm"])
def test_dcmdump_reads_the_same_files(name: str, tmp_path: Path) -> None:
    path = without_preamble(tmp_path)[name]
    dump = dcmdump(path)  # it reads the file, or raises
    assert "PatientName" in dump
    assert str(read_dataset(path).PatientName) in dump


def test_a_bare_data_set_converts_as_the_whole_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = without_preamble(tmp_path)["explicit-bare.dcm"]
    assert main(["convert", "jpg", str(CT), str(tmp_path / "whole.jpg")]) == 0
    assert main(["convert", "jpg", str(bare), str(tmp_path / "bare.jpg")]) == 0
    whole, cut = (Image.open(tmp_path / name) for name in ("whole.jpg", "bare.jpg"))
    assert whole.tobytes() == cut.tobytes()


NOT_DICOM = {
    "noise.bin": random.Random(7).randbytes(4096),
    "notes.txt": b"DICM is mentioned here, but later on\n",
    "zeros.dcm": bytes(1024),
}


@pytest.mark.parametrize("name", sorted(NOT_DICOM))
def test_other_files_are_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(NOT_DICOM[name])
    with pytest.raises(DicomFileError, match="not a DICOM file"):
        read_dataset(path)
    assert main(["tags", str(path)]) == 1
    assert capsys.readouterr().err == f"store-server tags: {path}: not a DICOM file\n"
