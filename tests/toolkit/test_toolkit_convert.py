"""DICOM to JPEG and thumbnails, over every image in pydicom's test data and pydicom-data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_files

from services.cli.main import main
from shared.dicom.convert import ConversionError, Window, dcm_to_jpg, dcm_to_thumbnail
from shared.dicom.files import read_dataset
from tests.toolkit.conftest import sample_file

# Files that must fail, and the words the reason must contain. Everything else must convert.
EXPECTED_FAILURES = {
    "JPEG-lossy.dcm": "cannot decode the JPEG Extended (Process 2 and 4) pixel data: libjpeg",
    # A sequence delimiter inside the codestream garbles its size: refused before decoding.
    "JPEG2000-embedded-sequence-delimiter.dcm": "the compressed frame declares 3722445056x1024",
    "MR_truncated.dcm": "number of bytes of pixel data is less than expected",
    "badVR.dcm": "invalid Number of Frames '1A'",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "no pixel data",
    "meta_missing_tsyntax.dcm": "incomplete image description",
    "nested_priv_SQ.dcm": "incomplete image description",
    # Without the Part 10 header: read as dcmdump reads them, in little endian only.
    "ExplVR_BigEndNoMeta.dcm": "not a DICOM file",
    "ExplVR_LitEndNoMeta.dcm": "no pixel data",
    "no_meta.dcm": "not a DICOM file",  # a stray byte before the first element
    "rtstruct.dcm": "no pixel data",
}
NON_IMAGES = ("DICOMDIR", "IM0000", "SR", "rtplan", "waveform", "reportsi", "priv_SQ", "UN_seq")


def corpus() -> list[Path]:
    return sorted(
        Path(p)
        for p in get_testdata_files()
        if Path(p).is_file()
        and Path(p).suffix not in {".txt", ".json", ".dump", ".gz", ".icc"}
        and Path(p).name not in {"README"}
    )


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_every_test_image_converts_or_fails_clearly(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "picture.jpg"
    try:
        written = dcm_to_jpg(source, target)
    except ConversionError as error:
        expected = EXPECTED_FAILURES.get(source.name)
        if expected is None:
            assert (
                any(part in source.name for part in NON_IMAGES) or "no pixel data" in error.reason
            )
            assert "no pixel data" in error.reason or "not a DICOM file" in error.reason
        else:
            assert expected in error.reason
        assert not target.exists()
        return
    assert source.name not in EXPECTED_FAILURES
    dataset = read_dataset(source)  # as the conversion read it, preamble or not
    picture = np.asarray(Image.open(written[0]))
    assert written == [target]
    assert picture.shape[:2] == (dataset.Rows, dataset.Columns)
    if dataset.Rows * dataset.Columns >= 64 * 64:
        assert picture.max() > picture.min(), "a real image is not one flat colour"


def test_window_from_the_command_maps_hounsfield_units(tmp_path: Path) -> None:
    source = sample_file("CT_small.dcm")
    dataset = pydicom.dcmread(source)
    units = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    expected = np.clip((units - (40 - 0.5)) / (400 - 1) + 0.5, 0, 1) * 255
    [written] = dcm_to_jpg(source, tmp_path / "ct.jpg", window=Window(40, 400), quality=95)
    picture = np.asarray(Image.open(written), dtype=float)
    assert np.abs(picture - expected).mean() < 2.5
    assert picture[units < -160].mean() < 5  # below the window: black
    assert picture[units > 240].mean() > 250  # above the window: white


def test_file_window_is_used_when_none_is_given(tmp_path: Path) -> None:
    source = sample_file("CT_small.dcm")
    [own] = dcm_to_jpg(source, tmp_path / "own.jpg")
    [lung] = dcm_to_jpg(source, tmp_path / "lung.jpg", window=Window(-600, 1500))
    assert (
        np.abs(np.asarray(Image.open(own), float) - np.asarray(Image.open(lung), float)).mean() > 10
    )


def test_monochrome1_is_inverted_after_voi(tmp_path: Path) -> None:
    source = sample_file("RG1_UNCI.dcm")  # CR, MONOCHROME1, window 15000/30000 in the file
    stored = pydicom.dcmread(source).pixel_array.astype(float)
    windowed = np.clip((stored - (15000 - 0.5)) / (30000 - 1) + 0.5, 0, 1) * 255
    [written] = dcm_to_jpg(source, tmp_path / "cr.jpg", quality=95)
    picture = np.asarray(Image.open(written), dtype=float)
    assert np.abs(picture - (255 - windowed)).mean() < 2.5
    high, low = stored > np.percentile(stored, 99), stored < np.percentile(stored, 1)
    assert picture[high].mean() + 100 < picture[low].mean(), "highest values are the darkest"


# SC_rgb: a red band on top; the YBR_FULL_422 JPEG and the palette file must look alike.
@pytest.mark.parametrize(
    "name", ["SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_ybr_full_uncompressed.dcm"]
)
def test_colour_models_come_out_as_rgb(tmp_path: Path, name: str) -> None:
    [written] = dcm_to_jpg(sample_file(name), tmp_path / f"{name}.jpg", quality=95)
    red = np.asarray(Image.open(written), dtype=float)[2:8, 40:60].mean(axis=(0, 1))
    assert red[0] > 200 and red[1] < 40 and red[2] < 40


def test_both_byte_orders_give_one_picture(tmp_path: Path) -> None:
    little = dcm_to_jpg(sample_file("OBXXXX1A.dcm"), tmp_path / "le.jpg")[0]
    big = dcm_to_jpg(sample_file("OBXXXX1A_expb.dcm"), tmp_path / "be.jpg")[0]
    difference = np.abs(np.asarray(Image.open(little), float) - np.asarray(Image.open(big), float))
    assert difference.mean() < 1 and np.asarray(Image.open(big)).mean() > 5


def test_multi_frame_middle_chosen_and_all(tmp_path: Path) -> None:
    source = sample_file("emri_small.dcm")
    frames = pydicom.dcmread(source).pixel_array
    written = dcm_to_jpg(source, tmp_path / "all.jpg", frame="all")
    assert [p.name for p in written] == [f"all-{n:03d}.jpg" for n in range(1, 11)]
    assert all(p.stat().st_size > 0 for p in written)
    [middle] = dcm_to_jpg(source, tmp_path / "middle.jpg")
    assert Image.open(middle).tobytes() == Image.open(written[5]).tobytes()
    [third] = dcm_to_jpg(source, tmp_path / "third.jpg", frame=3)
    assert Image.open(third).tobytes() == Image.open(written[2]).tobytes()
    assert not np.array_equal(frames[2], frames[5])
    with pytest.raises(ConversionError, match="frame 11 requested, the image has 10"):
        dcm_to_jpg(source, tmp_path / "x.jpg", frame=11)


def test_thumbnail_keeps_the_aspect_ratio(tmp_path: Path) -> None:
    written = dcm_to_thumbnail(sample_file("JPEG-LL.dcm"), tmp_path / "tn.png", size=128)
    assert Image.open(written).size == (32, 128)  # 256 columns x 1024 rows
    many = dcm_to_thumbnail(sample_file("color3d_jpeg_baseline.dcm"), tmp_path / "tn.jpg", size=64)
    assert Image.open(many).size == (64, 48)


def test_oversized_images_are_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="exceeds the limit of 100000"):
        dcm_to_thumbnail(sample_file("RG1_J2KR.dcm"), tmp_path / "tn.jpg", max_pixels=100_000)


def test_hostile_files_fail_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not an image")
    with pytest.raises(ConversionError, match="not a DICOM file"):
        dcm_to_jpg(text, tmp_path / "a.jpg")
    original = sample_file("CT_small.dcm").read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(ConversionError):
        dcm_to_jpg(truncated, tmp_path / "b.jpg")
    huge = bytearray(original)
    at = huge.index(b"\x10\x00\x10\x00PN")  # Patient Name claims 65 kB: swallows the rest
    huge[at + 6 : at + 8] = b"\xff\xff"
    hostile = tmp_path / "huge.dcm"
    hostile.write_bytes(bytes(huge))
    with pytest.raises(ConversionError, match="no pixel data"):
        dcm_to_jpg(hostile, tmp_path / "c.jpg")
    with pytest.raises(ConversionError, match="no such file"):
        dcm_to_jpg(tmp_path / "absent.dcm", tmp_path / "d.jpg")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("MR_small.dcm", "I;16"),  # 16 bits stored
        ("emri_small.dcm", "I;16"),  # 12 bits stored
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "L"),
        ("SC_rgb.dcm", "RGB"),
    ],
)
def test_a_png_is_written_for_a_png_name_with_the_images_depth(
    name: str, mode: str, tmp_path: Path
) -> None:
    source = sample_file(name)
    [png] = dcm_to_jpg(source, tmp_path / "picture.png")
    [jpeg] = dcm_to_jpg(source, tmp_path / "picture.jpg", quality=95)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert jpeg.read_bytes().startswith(JPEG_SIGNATURE)
    picture = Image.open(png)
    assert picture.mode == mode
    values = np.asarray(picture, dtype=float) / (257 if mode == "I;16" else 1)
    # The same picture, give or take what JPEG compression does to sharp edges.
    assert np.abs(values - np.asarray(Image.open(jpeg), dtype=float)).mean() < 4
    if mode == "I;16":
        assert len(np.unique(np.asarray(picture))) > 256, "more shades than 8 bits can hold"


def test_every_frame_follows_the_extension(tmp_path: Path) -> None:
    written = dcm_to_jpg(sample_file("emri_small.dcm"), tmp_path / "all.png", frame="all")
    assert [p.name for p in written] == [f"all-{n:03d}.png" for n in range(1, 11)]
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in written)
    assert {Image.open(p).mode for p in written} == {"I;16"}
    [jpeg] = dcm_to_jpg(sample_file("emri_small.dcm"), tmp_path / "middle.JPEG")
    assert jpeg.read_bytes().startswith(JPEG_SIGNATURE)
    [thumbnail] = [dcm_to_thumbnail(sample_file("MR_small.dcm"), tmp_path / "tn.png")]
    assert thumbnail.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("kind", ["jpg", "thumbnail"])
def test_other_extensions_are_refused_naming_those_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    target = tmp_path / "picture.gif"
    with pytest.raises(
        ConversionError, match=r"picture\.gif: the name must end in .jpg, .jpeg or .png"
    ):
        dcm_to_jpg(sample_file("CT_small.dcm"), target)
    with pytest.raises(SystemExit) as exited:
        main(["convert", kind, str(sample_file("CT_small.dcm")), str(target)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"store-server convert {kind}: argument DST: {str(target)!r}: the name must end "
        f"in .jpg, .jpeg or .png (see store-server convert {kind} --help)\n"
    )
    assert not target.exists()
