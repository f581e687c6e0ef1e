"""Reading what a sender sent holds bounded memory, whatever the file inflates or grows to:
the receiver's structure check and the header that filing and indexing read."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from shared.dicom.convert import ConversionError, dcm_to_thumbnail
from shared.dicom.encoding import EncodingError, check_file
from shared.dicom.header import HeaderReadError, read_header
from tests.support.bombs import PRIVATE_BLOB, big_multiframe, header, padded_file

T = TypeVar("T")
BLOB = 256 * 2**20  # 256 MiB of zeros: about 256 kB deflated
BOUND = 16 * 2**20  # what reading may hold, at most, whatever the blob


def peak(read: Callable[[], T]) -> tuple[T, int]:
    """What ``read`` returns, and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        return read(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("bombs")
    made = {
        "deflated": padded_file(folder / "deflated.dcm", header(), BLOB, deflated=True),
        "plain": padded_file(folder / "plain.dcm", header(), BLOB, deflated=False),
    }
    yield made


def test_a_deflate_bomb_is_small_on_the_wire(bombs: dict[str, Path]) -> None:
    assert bombs["deflated"].stat().st_size < BLOB // 500


@pytest.mark.parametrize("kind", ["deflated", "plain"])
def test_the_structure_check_walks_a_huge_data_set_in_bounded_memory(
    bombs: dict[str, Path], kind: str
) -> None:
    facts, held = peak(lambda: check_file(bombs[kind]))
    assert facts.sop_instance_uid == str(
        pydicom.dcmread(bombs[kind], specific_tags=["SOPInstanceUID"]).SOPInstanceUID
    )
    assert held < BOUND, f"{held / 2**20:.0f} MiB held"


def test_a_data_set_inflating_past_the_limit_is_refused_with_the_reason(
    bombs: dict[str, Path],
) -> None:
    with pytest.raises(EncodingError, match=f"inflates beyond {BLOB // 2} bytes"):
        check_file(bombs["deflated"], max_inflated=BLOB // 2)
    with pytest.raises(HeaderReadError, match="inflates beyond"):
        read_header(bombs["deflated"], max_inflated=1024)


@pytest.mark.parametrize("kind", ["deflated", "plain"])
def test_a_header_is_read_in_bounded_memory_without_the_huge_value(
    bombs: dict[str, Path], kind: str
) -> None:
    dataset, held = peak(lambda: read_header(bombs[kind]))
    assert held < BOUND, f"{held / 2**20:.0f} MiB held"
    assert (str(dataset.PatientName), dataset.PatientID) == ("Bomb^Deflate", "BOMB1")
    assert PRIVATE_BLOB not in dataset  # skipped on disk, not held
    assert "PixelData" not in dataset
    assert (
        dataset.file_meta.TransferSyntaxUID
        == pydicom.dcmread(
            bombs[kind], stop_before_pixels=True, defer_size=1024
        ).file_meta.TransferSyntaxUID
    )


def test_a_real_deflated_file_reads_as_pydicom_reads_it() -> None:
    path = Path(get_testdata_file("image_dfl.dcm"))  # type: ignore[arg-type]
    assert check_file(path).sop_instance_uid
    ours = read_header(path)
    theirs = pydicom.dcmread(path, stop_before_pixels=True)
    assert [element.tag for element in ours] == [element.tag for element in theirs]
    assert ours == theirs
    chosen = read_header(path, specific_tags=["PatientName", "StudyInstanceUID"])
    assert {element.keyword for element in chosen} >= {"PatientName", "StudyInstanceUID"}
    assert "Rows" not in chosen


def test_a_corrupt_deflate_stream_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    path = Path(get_testdata_file("image_dfl.dcm"))  # type: ignore[arg-type]
    damaged = tmp_path / "damaged.dcm"
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 64] = bytes(range(64))
    damaged.write_bytes(bytes(content))
    with pytest.raises(EncodingError):
        check_file(damaged)


def test_a_thumbnail_of_a_huge_image_reads_one_frame(tmp_path: Path) -> None:
    source = big_multiframe(tmp_path / "cine.dcm", frames=100, side=1024)  # 200 MiB of pixels
    made, held = peak(lambda: dcm_to_thumbnail(source, tmp_path / "cine.png", size=64))
    assert held < 64 * 2**20, f"{held / 2**20:.0f} MiB held"
    with Image.open(made) as picture:
        assert picture.size == (64, 64)
        assert np.asarray(picture).std() > 10  # the gradient, not a flat grey


def test_a_thumbnail_of_a_deflate_bomb_is_made_without_inflating_it_in_memory(
    bombs: dict[str, Path], tmp_path: Path
) -> None:
    made, held = peak(lambda: dcm_to_thumbnail(bombs["deflated"], tmp_path / "b.png", size=8))
    assert held < BOUND, f"{held / 2**20:.0f} MiB held"
    with Image.open(made) as picture:
        assert picture.size == (2, 2)  # a thumbnail never enlarges


def test_a_codestream_declaring_a_huge_picture_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    """A 64 x 64 JPEG 2000 image whose SIZ marker says 40000 x 40000: the decoder would
    allocate gigabytes. Refused with the reason, as is one larger than its data set says."""
    original = Path(get_testdata_file("MR_small_jp2klossless.dcm"))  # type: ignore[arg-type]
    content = original.read_bytes()
    siz = content.index(b"\xff\x4f\xff\x51") + 2
    for (columns, rows), reason in (
        ((40000, 40000), "declares 40000x40000 pixels, beyond the limit of"),
        ((640, 640), "declares 640x640 pixels but the image is 64x64"),
    ):
        forged = bytearray(content)
        forged[siz + 6 : siz + 14] = struct.pack(">II", columns, rows)
        bomb = tmp_path / f"siz-{columns}.dcm"
        bomb.write_bytes(bytes(forged))
        with pytest.raises(ConversionError, match=reason):
            dcm_to_thumbnail(bomb, tmp_path / "no.png")
        assert not (tmp_path / "no.png").exists()


@pytest.mark.parametrize("group_length", [0, 10, None])
def test_a_deflate_bomb_with_a_misleading_meta_is_still_read_in_bounded_memory(
    bombs: dict[str, Path], tmp_path: Path, group_length: int | None
) -> None:
    """The File Meta Information's group length understated (the Transfer Syntax UID past
    the end it declares), or its group length element left out: the header is still read
    inflating as a stream, or refused, never inflated whole."""
    data = bombs["deflated"].read_bytes()
    element = data[132:144]
    assert element[:8] == b"\x02\x00\x00\x00UL\x04\x00"
    if group_length is None:
        misleading = data[:132] + data[144:]
    else:
        misleading = data[:140] + struct.pack("<L", group_length) + data[144:]
    path = tmp_path / "misleading.dcm"
    path.write_bytes(misleading)

    def read() -> object:
        try:
            return read_header(path)
        except HeaderReadError as error:
            return error

    outcome, held = peak(read)
    assert held < BOUND, f"{held / 2**20:.0f} MiB held"
    if not isinstance(outcome, HeaderReadError):
        assert outcome.PatientID == "BOMB1"  # type: ignore[attr-defined]
