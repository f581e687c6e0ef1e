"""Which account a study is filed into: the four branches of the chain, name matching."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files

from shared.dicom.net import send
from tests.router.conftest import (
    StartServer,
    add_accounts,
    make_instance,
    relative,
    wait_for_filed,
)
from tests.support.server import ServerUnderTest

REQUESTING = 0x00321032
REFERRING = 0x00080090


def file_one(server: ServerUnderTest, folder: Path, study_uid: str, **keywords: object) -> str:
    path = make_instance(folder, study_uid=study_uid, **keywords)  # type: ignore[arg-type]
    summary = send("127.0.0.1", server.port, [path], called_aet="STORE_SERVER")
    assert summary.failed == 0, summary.results
    [filed] = relative(server, wait_for_filed(server, 1))
    return filed


@pytest.mark.parametrize(
    ("requesting", "referring", "expected"),
    [
        ("SMITH^JOHN", "JONES^ANNA", "smith/"),  # 1. requesting physician has an account
        ("NOBODY^KNOWN", "JONES^ANNA", "jones/"),  # 2. referring physician has an account
        ("NOBODY^KNOWN", "ALSO^UNKNOWN", "Guest/NOBODY_KNOWN/"),  # 3. named, no account
        (None, "ALSO^UNKNOWN", "Guest/ALSO_UNKNOWN/"),  # 3. referring when no requesting
        (None, None, "Unknown/"),  # 4. nobody named
        ("", "^", "Unknown/"),  # empty values name nobody
    ],
)
def test_the_four_branches(
    start_server: StartServer,
    tmp_path: Path,
    study_uid: str,
    requesting: str | None,
    referring: str | None,
    expected: str,
) -> None:
    server = start_server()
    add_accounts(server, {"smith": ["Smith^John"], "jones": ["Jones^Anna"]})
    filed = file_one(
        server,
        tmp_path / "in",
        study_uid,
        RequestingPhysician=requesting,
        ReferringPhysicianName=referring,
    )
    assert filed.startswith(expected)
    assert filed.endswith("/Dicom/001_T1_axial/001-001-000001.dcm")
    assert filed.split("/")[-4] == "DOE_JANE_20261125_A1234"


@pytest.mark.parametrize(
    "written",
    ["smith^john", "SMITH^JOHN^^DR.", "Dr. Smith^John", "Smîth^Jöhn", "SMITH^JOHN^A^PROF^MD"],
)
def test_name_variants_match(
    start_server: StartServer, tmp_path: Path, study_uid: str, written: str
) -> None:
    server = start_server()
    add_accounts(server, {"smith": ["Smith^John"]})
    assert file_one(server, tmp_path, study_uid, RequestingPhysician=written).startswith("smith/")


def test_aliases_and_multi_valued_requesting_physician(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    add_accounts(server, {"smith": ["Smith^John", "Smith^J"], "jones": ["Jones^Anna"]})
    # The first value with an account wins: the unknown first value is skipped.
    filed = file_one(
        server,
        tmp_path,
        study_uid,
        RequestingPhysician=["Unknown^Doctor", "Smith^J", "Jones^Anna"],
    )
    assert filed.startswith("smith/")


@pytest.mark.parametrize(
    ("charset_file", "registered"),
    [
        ("chrFren.dcm", "BUC^Jerome"),  # ISO_IR 100, accents
        ("chrGerm.dcm", "Äneas^Rüdiger"),  # ISO_IR 100
        ("chrH31.dcm", "山田^太郎"),  # ISO 2022 IR 87, ideographic group
        ("chrH32.dcm", "やまだ^たろう"),  # ISO 2022 IR 13 + 87, phonetic group
        ("chrX1.dcm", "王^小東"),  # ISO_IR 192
        ("chrI2.dcm", "Hong^Gildong"),  # ISO 2022 IR 149, alphabetic group
    ],
)
def test_names_are_decoded_with_the_files_character_set(
    start_server: StartServer,
    tmp_path: Path,
    study_uid: str,
    charset_file: str,
    registered: str,
) -> None:
    [source] = get_charset_files(charset_file)
    original = pydicom.dcmread(source)
    raw_name = original.get_item("PatientName").value  # the bytes as the modality wrote them
    encoded = original["PatientName"].value
    server = start_server()
    add_accounts(server, {"radiology": [registered]})
    filed = file_one(
        server,
        tmp_path,
        study_uid,
        SpecificCharacterSet=original.SpecificCharacterSet,
        PatientName=None,
        raw={REQUESTING: ("PN", raw_name), 0x00100010: ("PN", raw_name)},
    )
    assert filed.startswith("radiology/"), (filed, str(encoded))
