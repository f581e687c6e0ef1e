"""Reading and editing tags, through the library and the ``tags`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files

from services.cli.main import main
from shared.dicom.tag_edits import TagChange, write_tags
from shared.dicom.tags import TagError, get_tag, get_tag_by_keyword, load_tags, parse_tag
from tests.toolkit.conftest import sample_file


def charset_file(name: str) -> Path:
    return Path(next(p for p in get_charset_files() if p.endswith(name)))


def test_load_tags_lists_header_and_bulk_data_as_its_length() -> None:
    elements = load_tags(sample_file("CT_small.dcm"))
    by_keyword = {e.keyword: e for e in elements}
    assert by_keyword["PatientName"].value == "CompressedSamples^CT1"
    assert by_keyword["PatientName"].vr == "PN" and by_keyword["PatientName"].tag == "(0010,0010)"
    assert by_keyword["TransferSyntaxUID"].value == "1.2.840.10008.1.2.1"
    assert by_keyword["PixelData"].value == "<32768 bytes>"
    assert all(len(e.value) < 2000 for e in elements)


def test_values_are_decoded_with_the_specific_character_set() -> None:
    russian = get_tag_by_keyword(charset_file("chrRuss.dcm"), "PatientName").value
    assert russian == "Люкceмбypг"  # noqa: RUF001 - the file itself mixes Latin letters in
    japanese = get_tag(charset_file("chrH31.dcm"), 0x0010, 0x0010).value
    assert japanese == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_sequences_are_expanded_with_their_depth() -> None:
    elements = load_tags(charset_file("chrSQEncoding.dcm"))
    sequence = next(e for e in elements if e.keyword == "RequestedProcedureCodeSequence")
    assert sequence.value == "<1 item>" and sequence.depth == 0
    nested = [e for e in elements if e.depth == 2 and e.keyword == "PatientName"]
    assert nested[0].value == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"


def test_absent_and_unknown_tags_are_clear_errors() -> None:
    with pytest.raises(TagError, match=r"\(0010,1060\) PatientMotherBirthName is not in the file"):
        get_tag_by_keyword(sample_file("CT_small.dcm"), "PatientMotherBirthName")
    with pytest.raises(TagError, match="unknown tag 'PatientNam'"):
        parse_tag("PatientNam")
    assert parse_tag("(0010,0020)") == parse_tag("00100020") == parse_tag("PatientID")


def test_write_tags_keeps_pixel_data_and_transfer_syntax(tmp_path: Path) -> None:
    source = sample_file("JPEG2000.dcm")
    out = tmp_path / "edited.dcm"
    changes = [
        TagChange(parse_tag("PatientName"), "Doe^Jane"),
        TagChange(parse_tag("AccessionNumber"), "ACC42"),
        TagChange(parse_tag("ImageType"), "DERIVED\\SECONDARY"),
        TagChange(parse_tag("InstitutionName"), "Clinique Saint-Zoé"),
        TagChange(parse_tag("StudyID"), None),
    ]
    assert write_tags(source, changes, out) == out
    before, after = pydicom.dcmread(source), pydicom.dcmread(out)
    assert after.PatientName == "Doe^Jane" and after.AccessionNumber == "ACC42"
    assert list(after.ImageType) == ["DERIVED", "SECONDARY"]
    assert after.InstitutionName == "Clinique Saint-Zoé"
    assert after.SpecificCharacterSet == "ISO_IR 192"
    assert "StudyID" not in after and "StudyID" in before
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert after.PixelData == before.PixelData
    assert pydicom.dcmread(source).PatientName == before.PatientName  # source untouched


def test_write_tags_in_place_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "ct.dcm"
    target.write_bytes(sample_file("CT_small.dcm").read_bytes())
    write_tags(target, [TagChange(parse_tag("PatientID"), "NEW-ID")])
    assert pydicom.dcmread(target).PatientID == "NEW-ID"
    assert [p.name for p in tmp_path.iterdir()] == ["ct.dcm"]  # no temporary left behind


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        ("PatientAge", "forty", "invalid value 'forty' for (0010,1010) PatientAge (VR AS)"),
        ("Rows", "12", "describes the pixel data and is not editable"),
        ("TransferSyntaxUID", "1.2.840.10008.1.2", "transfer syntax is not editable"),
        ("PatientName", "A\\B", "takes one value, got 2"),
        ("PixelData", "00", "not editable"),
        ("SliceThickness", "thick", "invalid value 'thick'"),
        ("ReferencedImageSequence", "x", "is a sequence"),
        ("00331001", "x", "not in the DICOM dictionary: give its VR"),
    ],
)
def test_invalid_edits_are_refused(tag: str, value: str, message: str, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    with pytest.raises(TagError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_tags(sample_file("CT_small.dcm"), [TagChange(parse_tag(tag), value)], out)
    assert not out.exists()


def test_unencodable_value_in_the_files_character_set_is_refused(tmp_path: Path) -> None:
    latin = charset_file("chrFren.dcm")  # ISO_IR 100
    with pytest.raises(TagError, match="cannot be encoded in the file's character set ISO_IR 100"):
        write_tags(latin, [TagChange(parse_tag("PatientName"), "Иванов^Иван")], tmp_path / "o.dcm")


def test_hostile_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(TagError, match="not a DICOM file"):
        load_tags(empty)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(sample_file("CT_small.dcm").read_bytes()[:700])
    # What was written before the cut is shown; nothing crashes on the rest.
    assert 0 < len(load_tags(truncated)) < len(load_tags(sample_file("CT_small.dcm")))


def test_tags_command_prints_text_json_and_edits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(sample_file("CT_small.dcm"))
    assert main(["tags", source, "PatientName", "0028,0010"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "(0010,0010) PN PatientName: CompressedSamples^CT1",
        "(0028,0010) US Rows: 128",
    ]
    assert main(["tags", source, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {
        "tag": "(0010,0020)",
        "keyword": "PatientID",
        "vr": "LO",
        "value": "1CT1",
        "depth": 0,
        "kind": "element",
        "length": None,
        "fragments": None,
    } in listed
    out = tmp_path / "edited.dcm"
    assert (
        main(
            [
                "tags",
                source,
                "--set",
                "PatientName=Roe^Richard",
                "--set",
                "0009,0010:LO=ACME",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert pydicom.dcmread(out).PatientName == "Roe^Richard"
    assert main(["tags", source, "AdmittingDiagnosesDescription"]) == 1
    error = capsys.readouterr().err
    assert (
        error.strip()
        == "store-server tags: (0008,1080) AdmittingDiagnosesDescription is not in the file"
    )


def test_editing_in_place_keeps_the_original_as_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = sample_file("CT_small.dcm").read_bytes()
    target = tmp_path / "ct.dcm"
    target.write_bytes(original)

    assert main(["tags", str(target), "--set", "PatientID=NEW-ID"]) == 0

    backup = tmp_path / "ct.dcm.bak"
    assert capsys.readouterr().out == (f"wrote {target} (1 change); the original is in {backup}\n")
    assert backup.read_bytes() == original
    assert pydicom.dcmread(target).PatientID == "NEW-ID"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.dcm", "ct.dcm.bak"]


def test_no_backup_when_told_or_when_writing_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ct.dcm"
    target.write_bytes(sample_file("CT_small.dcm").read_bytes())
    assert main(["tags", str(target), "--remove", "StudyID", "--no-backup"]) == 0
    assert capsys.readouterr().out == f"wrote {target} (1 change)\n"
    out = tmp_path / "out.dcm"
    assert main(["tags", str(target), "--set", "PatientID=X", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "written": str(out),
        "changes": 1,
        "backup": None,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.dcm", "out.dcm"]
