"""``tags`` shows what dcmdump shows: every element where it is, bulk data as its VR and
length, and each sequence item at its depth; and never loads bulk data to do so."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from services.cli.main import main
from shared.dicom.tags import get_tag_by_keyword, load_tags
from tests.support.dcmtk import dcmdump
from tests.toolkit.conftest import sample_file

_DUMP_LINE = re.compile(r"^( *)\(([0-9a-f]{4},[0-9a-f]{4})\) (\w\w) ")
_OUR_LINE = re.compile(r"^( *)\(([0-9A-F]{4},[0-9A-F]{4})\) ")
BIG = 32 * 1024 * 1024


def dcmdump_tree(path: Path) -> list[tuple[int, str]]:
    """(depth, tag) of each element and item dcmdump shows, delimiters and fragments left out."""
    tree = []
    for line in dcmdump(path).splitlines():
        found = _DUMP_LINE.match(line)
        if found and found[2] not in ("fffe,e00d", "fffe,e0dd") and found[3] != "pi":
            tree.append((len(found[1]) // 2, found[2]))
    return tree


def tags_output(capsys: pytest.CaptureFixture[str], *arguments: str) -> list[str]:
    assert main(["tags", *arguments]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "emri_small_jpeg_2k_lossless.dcm"]
)
def test_the_dump_has_dcmdumps_elements_items_and_depths(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sample_file(name)
    ours = []
    for line in tags_output(capsys, str(path)):
        found = _OUR_LINE.match(line)
        assert found, line
        ours.append((len(found[1]) // 2, found[2].lower()))
    assert ours == dcmdump_tree(path)


def test_pixel_data_is_found_and_shown_as_its_length(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_file("CT_small.dcm")
    assert "(7fe0,0010) OW 00af\\00b4" in dcmdump(path) and "# 32768, 1 PixelData" in dcmdump(path)

    assert tags_output(capsys, str(path), "PixelData") == [
        "(7FE0,0010) OW PixelData: <32768 bytes>"
    ]
    assert "(7FE0,0010) OW PixelData: <32768 bytes>" in tags_output(capsys, str(path))


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_encapsulated_pixel_data_is_shown_as_its_fragments(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sample_file(name)
    items = re.search(r"\(7fe0,0010\) OB \(PixelSequence #=(\d+)\)", dcmdump(path))
    assert items is not None
    fragments = int(items[1]) - 1  # the first item is the Basic Offset Table

    [line] = tags_output(capsys, str(path), "PixelData")

    plural = "s" if fragments != 1 else ""
    assert line == (
        f"(7FE0,0010) OB PixelData: <encapsulated: {fragments} fragment{plural}, undefined length>"
    )


def test_items_show_their_number_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    lines = tags_output(capsys, str(sample_file("rtplan.dcm")))
    at = lines.index("(300A,0010) SQ DoseReferenceSequence: <2 items>")
    assert lines[at + 1] == "  (FFFE,E000) Item: <item 1 of 2, 7 elements>"
    assert lines[at + 2] == "    (300A,0012) IS DoseReferenceNumber: 1"
    assert "  (FFFE,E000) Item: <item 2 of 2, 6 elements>" in lines[at + 3 :]


def test_json_carries_bulk_lengths_and_items(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tags", str(sample_file("rtplan.dcm")), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    items = [entry for entry in listed if entry["kind"] == "item"]
    assert items[0] == {
        "tag": "(FFFE,E000)",
        "keyword": "Item",
        "vr": "",
        "value": "<item 1 of 2, 7 elements>",
        "depth": 1,
        "kind": "item",
        "length": None,
        "fragments": None,
    }
    assert next(e for e in listed if e["keyword"] == "DoseReferenceNumber")["depth"] == 2

    assert main(["tags", str(sample_file("JPEG2000.dcm")), "PixelData", "--json"]) == 0
    [pixels] = json.loads(capsys.readouterr().out)
    assert (pixels["kind"], pixels["length"], pixels["fragments"]) == ("bulk", None, 1)
    assert main(["tags", str(sample_file("CT_small.dcm")), "PixelData", "--json"]) == 0
    [pixels] = json.loads(capsys.readouterr().out)
    assert (pixels["kind"], pixels["length"], pixels["fragments"]) == ("bulk", 32768, None)


@pytest.fixture
def big_images(tmp_path: Path) -> list[Path]:
    """A native and an encapsulated image, each with 32 MiB of pixel data."""
    dataset = pydicom.dcmread(sample_file("MR_small.dcm"))
    dataset.Rows = dataset.Columns = 4096
    dataset.PixelData = bytes(BIG)
    native = tmp_path / "native.dcm"
    dataset.save_as(native)
    dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless
    dataset.PixelData = encapsulate([bytes(BIG // 2), bytes(BIG // 2)])
    dataset["PixelData"].VR = "OB"
    encapsulated = tmp_path / "encapsulated.dcm"
    dataset.save_as(encapsulated)
    return [native, encapsulated]


def test_bulk_data_is_never_loaded(big_images: list[Path]) -> None:
    native, encapsulated = big_images
    tracemalloc.start()
    try:
        listed = load_tags(native) + load_tags(encapsulated)
        one = get_tag_by_keyword(native, "PixelData")
        other = get_tag_by_keyword(encapsulated, "PixelData")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < BIG // 8, f"{peak} bytes used to list the tags"
    assert (one.length, other.fragments) == (BIG, 2)
    assert sum(entry.keyword == "PixelData" for entry in listed) == 2
