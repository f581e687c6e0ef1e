"""Series thumbnails in the window that suits the series: bone-kernel CT shows its bones, a
file without a window gets one by modality and kernel, a few hot pixels do not flatten an MR.

The CT images are a phantom in Hounsfield units (air, soft tissue, lung, bone of 700 and
1400 HU and a bone ramp of 700-1500 HU) stored as HU + 1024 with Rescale Intercept -1024.
Grey levels are checked against PS3.3 C.11.2.1.2's linear window, as :mod:`shared.dicom.pixels`
computes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from shared.dicom.convert import dcm_to_jpg, dcm_to_thumbnail
from shared.dicom.window import description_kind, kernel_kind
from tests.toolkit.conftest import sample_file

SIDE = 256  # a thumbnail of this size is the image itself, pixel for pixel
AIR = (slice(0, 12), slice(0, 12))
SOFT = (slice(200, 215), slice(100, 156))
LUNG = (slice(50, 80), slice(60, 196))
BONE_700 = (slice(100, 130), slice(60, 90))
BONE_1400 = (slice(100, 130), slice(166, 196))
BONE_RAMP = (slice(160, 190), slice(60, 196))
SOFT_BONE: dict[str, Any] = {
    "WindowCenter": [40, 500],
    "WindowWidth": [400, 2000],
    "WindowCenterWidthExplanation": ["SOFT", "BONE"],
}
Region = tuple[slice, slice]


def phantom_hu() -> NDArray[np.float64]:
    """Air around a body of soft tissue holding a lung field, two bone rods and a bone ramp."""
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    hu = np.full((SIDE, SIDE), -1000.0)
    hu[(rows - 128) ** 2 + (columns - 128) ** 2 <= 110**2] = 40.0
    hu[LUNG] = -800.0
    hu[BONE_700] = 700.0
    hu[BONE_1400] = 1400.0
    hu[BONE_RAMP] = np.linspace(700.0, 1500.0, BONE_RAMP[1].stop - BONE_RAMP[1].start)
    return hu


def write_image(path: Path, stored: NDArray[Any], modality: str = "CT", **attributes: Any) -> Path:
    """A Part 10 file of 16-bit unsigned grey ``stored`` values (frames x rows x columns for
    a multi-frame image) with ``attributes`` set by keyword."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = MRImageStorage if modality == "MR" else CTImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.Modality = modality
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Rows, dataset.Columns = stored.shape[-2:]
    if stored.ndim == 3:
        dataset.NumberOfFrames = stored.shape[0]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 0
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = stored.astype("<u2").tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def ct_file(path: Path, hu: NDArray[np.float64] | None = None, **attributes: Any) -> Path:
    stored = np.rint((phantom_hu() if hu is None else hu) + 1024)
    return write_image(path, stored, RescaleSlope=1, RescaleIntercept=-1024, **attributes)


def thumbnail(source: Path, tmp_path: Path, size: int = SIDE) -> NDArray[np.float64]:
    written = dcm_to_thumbnail(source, tmp_path / f"{source.stem}-thumbnail.png", size=size)
    with Image.open(written) as picture:
        return np.asarray(picture, dtype=np.float64)


def grey(hu: float, center: float, width: float) -> float:
    """The 8-bit grey level of ``hu`` in a linear window."""
    return float(np.rint(np.clip((hu - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255))


def level(picture: NDArray[np.float64], region: Region) -> float:
    return float(picture[region].mean())


def test_a_bone_kernel_series_is_shown_in_its_bone_window(tmp_path: Path) -> None:
    source = ct_file(tmp_path / "bone.dcm", ConvolutionKernel="B70f", **SOFT_BONE)
    picture = thumbnail(source, tmp_path)
    assert level(picture, BONE_700) == grey(700, 500, 2000) == 153
    assert level(picture, BONE_1400) == grey(1400, 500, 2000) == 242
    ramp = picture[BONE_RAMP]
    assert ramp.std() > 25 and len(np.unique(ramp)) > 90  # bone density is readable

    # The first window, which the file offers first and dcm_to_jpg still uses, is soft
    # tissue: there, both bones and the whole ramp are white, one flat grey level.
    [first_window] = dcm_to_jpg(source, tmp_path / "first.png")
    with Image.open(first_window) as opened:
        deep = np.asarray(opened, dtype=np.float64)
    assert level(deep, BONE_700) == level(deep, BONE_1400) == 65535
    assert len(np.unique(deep[BONE_RAMP])) == 1


@pytest.mark.parametrize(
    ("kernel", "manufacturer", "description"),
    [
        ("BONEPLUS", "GE MEDICAL SYSTEMS", ""),
        ("FC30", "TOSHIBA", ""),
        ("YC", "Philips", ""),
        (["Hr64f", "3"], "SIEMENS", ""),  # the iterative strength comes second
        ("XYZ", "", "Knochen 2.0"),  # a kernel unknown here: the description says bone
    ],
)
def test_a_bone_series_is_known_by_kernel_or_description(
    tmp_path: Path, kernel: str | list[str], manufacturer: str, description: str
) -> None:
    source = ct_file(
        tmp_path / "bone.dcm",
        ConvolutionKernel=kernel,
        Manufacturer=manufacturer,
        SeriesDescription=description,
        WindowCenter=[40, 500],
        WindowWidth=[400, 2000],  # no explanation: the widest window is taken
    )
    picture = thumbnail(source, tmp_path)
    assert level(picture, BONE_1400) - level(picture, BONE_700) == 242 - 153


def test_a_window_explained_as_bone_wins_over_a_wider_one(tmp_path: Path) -> None:
    source = ct_file(
        tmp_path / "bone.dcm",
        ConvolutionKernel="H70h",
        WindowCenter=[40, 300, 1000],
        WindowWidth=[400, 1500, 4000],
        WindowCenterWidthExplanation=["SOFT", "BONE", "FULL"],
    )
    picture = thumbnail(source, tmp_path)
    assert level(picture, BONE_700) == grey(700, 300, 1500) == 196
    assert grey(700, 1000, 4000) == 108  # what the widest window would have given


def test_a_bone_series_whose_windows_all_leave_bone_white_gets_the_bone_default(
    tmp_path: Path,
) -> None:
    source = ct_file(
        tmp_path / "bone.dcm",
        ConvolutionKernel="B70f",
        WindowCenter=[40, -600],
        WindowWidth=[400, 1500],  # soft tissue and lung: neither reaches bone
    )
    picture = thumbnail(source, tmp_path)
    assert level(picture, BONE_700) == grey(700, 500, 2000)
    assert level(picture, BONE_1400) == grey(1400, 500, 2000)


@pytest.mark.parametrize("kernel", ["B30f", "STANDARD", "FC13", "Br40d"])
def test_a_soft_kernel_series_uses_the_first_window(tmp_path: Path, kernel: str) -> None:
    source = ct_file(tmp_path / "soft.dcm", ConvolutionKernel=kernel, **SOFT_BONE)
    picture = thumbnail(source, tmp_path)
    assert level(picture, SOFT) == grey(40, 40, 400) == 128
    assert level(picture, BONE_700) == level(picture, BONE_1400) == 255
    assert level(picture, AIR) == 0


@pytest.mark.parametrize(
    ("kernel", "explanations"),
    [("LUNG", ["SOFT", "LUNG", "BONE"]), ("Bl57d", None), ("FC52", None)],
)
def test_a_lung_series_uses_a_lung_window(
    tmp_path: Path, kernel: str, explanations: list[str] | None
) -> None:
    explained: dict[str, Any] = {}
    if explanations is not None:
        explained["WindowCenterWidthExplanation"] = explanations
    source = ct_file(
        tmp_path / "lung.dcm",
        ConvolutionKernel=kernel,
        WindowCenter=[40, -600, 500],
        WindowWidth=[400, 1500, 2000],
        **explained,
    )
    picture = thumbnail(source, tmp_path)
    assert level(picture, LUNG) == grey(-800, -600, 1500) == 94
    assert level(picture, AIR) == grey(-1000, -600, 1500) == 60


@pytest.mark.parametrize(
    ("kernel", "region", "hu", "window"),
    [
        ("H70h", BONE_700, 700, (500, 2000)),
        ("BONE", BONE_1400, 1400, (500, 2000)),
        ("LUNG", LUNG, -800, (-600, 1500)),
        ("B30f", SOFT, 40, (40, 400)),
        (None, SOFT, 40, (40, 400)),
    ],
)
def test_a_ct_without_a_window_gets_one_by_kernel(
    tmp_path: Path, kernel: str | None, region: Region, hu: float, window: tuple[int, int]
) -> None:
    named: dict[str, Any] = {} if kernel is None else {"ConvolutionKernel": kernel}
    picture = thumbnail(ct_file(tmp_path / "plain.dcm", **named), tmp_path)
    assert level(picture, region) == grey(hu, *window)
    assert picture.std() > 40


def test_an_mr_without_a_window_is_not_flattened_by_a_few_hot_pixels(tmp_path: Path) -> None:
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    stored = np.zeros((SIDE, SIDE))
    body = (rows - 128) ** 2 + (columns - 128) ** 2 <= 110**2
    stored[body] = 200 + 1000 * columns[body] / SIDE  # tissue from 200 to 1200
    hot = (np.array([5, 9, 250, 120, 60]), np.array([5, 250, 9, 3, 252]))
    stored[hot] = 65535
    source = write_image(tmp_path / "mr.dcm", np.rint(stored), modality="MR")

    picture = thumbnail(source, tmp_path)
    tissue = picture[body]
    assert tissue.std() > 40 and len(np.unique(tissue)) > 150
    assert (picture[hot] == 255).all() and picture[~body & (picture < 255)].max() == 0

    # Over the full range, as before, the hot pixels leave the tissue in 5 grey levels.
    [full_range] = dcm_to_jpg(source, tmp_path / "full.jpg", quality=95)
    with Image.open(full_range) as opened:
        assert np.asarray(opened, dtype=np.float64)[body].std() < 2


def test_a_voi_lut_sequence_comes_before_any_window(tmp_path: Path) -> None:
    lut = Dataset()
    lut.add_new("LUTDescriptor", "US", [2048, 0, 16])  # HU 0..2047 to 0..65504
    lut.add_new("LUTData", "OW", (np.arange(2048, dtype="<u2") * 32).tobytes())
    source = ct_file(
        tmp_path / "lut.dcm", ConvolutionKernel="B70f", VOILUTSequence=[lut], **SOFT_BONE
    )
    picture = thumbnail(source, tmp_path)
    for region, hu in ((SOFT, 40), (BONE_700, 700), (BONE_1400, 1400)):
        assert level(picture, region) == np.rint(hu * 32 / 65535 * 255)  # 5, 87 and 174
    assert level(picture, AIR) == 0


@pytest.mark.parametrize("window", [{"WindowCenter": 2048, "WindowWidth": 4096}, {}])
def test_monochrome1_is_inverted(tmp_path: Path, window: dict[str, int]) -> None:
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    stored = np.rint(100 + 4000 * columns / SIDE + 50 * np.sin(rows / 9))
    pictures = [
        thumbnail(
            write_image(
                tmp_path / f"{photometric}.dcm",
                stored,
                modality="CR",
                PhotometricInterpretation=photometric,
                **window,
            ),
            tmp_path,
        )
        for photometric in ("MONOCHROME1", "MONOCHROME2")
    ]
    inverted, upright = pictures
    assert upright.std() > 60
    assert np.array_equal(inverted, 255 - upright)
    assert inverted[:, :20].mean() > 230 and inverted[:, -20:].mean() < 25  # high: dark


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm"])
def test_colour_stays_colour(tmp_path: Path, name: str) -> None:
    picture = thumbnail(sample_file(name), tmp_path)
    assert picture.shape == (100, 100, 3)
    red = picture[2:8, 40:60].mean(axis=(0, 1))  # the red band on top
    assert red[0] > 200 and red[1] < 40 and red[2] < 40


def test_a_multi_frame_image_shows_its_middle_frame(tmp_path: Path) -> None:
    frames = []
    for place in range(5):  # a 1400 HU rod moves along the frames
        hu = phantom_hu()
        hu[BONE_1400] = 40.0
        hu[135:155, 60 + 30 * place : 80 + 30 * place] = 1400.0
        frames.append(np.rint(hu + 1024))
    source = write_image(
        tmp_path / "frames.dcm",
        np.stack(frames),
        RescaleSlope=1,
        RescaleIntercept=-1024,
        ConvolutionKernel="B70f",
        **SOFT_BONE,
    )
    picture = thumbnail(source, tmp_path)
    rods = [level(picture, (slice(135, 155), slice(60 + 30 * p, 80 + 30 * p))) for p in range(5)]
    assert rods == [grey(40, 500, 2000)] * 2 + [grey(1400, 500, 2000)] + [grey(40, 500, 2000)] * 2


def test_an_enhanced_image_uses_its_frames_window_and_rescale(tmp_path: Path) -> None:
    source = sample_file("eCT_Supplemental.dcm")  # 2 frames; window 49/102 and rescale -1024
    dataset = pydicom.dcmread(source)  # in the shared functional groups, none at the top
    hu = dataset.pixel_array[1].astype(np.float64) - 1024  # the middle frame: 2 // 2 + 1
    expected = Image.fromarray(
        (np.clip((hu - 48.5) / 101 + 0.5, 0, 1) * 255).round().astype(np.uint8)
    )
    expected.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    picture = thumbnail(source, tmp_path)
    assert np.abs(picture - np.asarray(expected, dtype=np.float64)).mean() < 1
    assert picture.std() > 40


def test_ct_small_without_a_window_is_shown_in_the_soft_tissue_default(tmp_path: Path) -> None:
    source = sample_file("CT_small.dcm")  # CT, kernel STANDARD, no window
    dataset = pydicom.dcmread(source)
    hu = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    expected = np.rint(np.clip((hu - 39.5) / 399 + 0.5, 0, 1) * 255)
    assert np.abs(thumbnail(source, tmp_path) - expected).max() == 0


# Measured spreads (standard deviation of grey levels, distinct levels) of each thumbnail at
# the service's default size: none flat.
@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # CT, no window: soft-tissue default
        "MR_small.dcm",  # MR with a window
        "emri_small.dcm",  # MR, 10 frames, no window: percentiles of the middle frame
        "MR2_UNCR.dcm",  # MR with a rescale slope of 0.000061
        "RG1_UNCI.dcm",  # CR, MONOCHROME1
        "eCT_Supplemental.dcm",  # enhanced CT, window in the functional groups
        "SC_rgb.dcm",
        "US1_J2KR.dcm",  # US, YBR_RCT in JPEG 2000
    ],
)
def test_real_files_give_pictures_that_are_not_flat(tmp_path: Path, name: str) -> None:
    picture = thumbnail(sample_file(name), tmp_path, size=320)
    assert max(picture.shape[:2]) <= 320
    assert picture.std() > 25 and len(np.unique(picture)) > 4


@pytest.mark.parametrize(
    ("kernel", "manufacturer", "kind"),
    [
        ("B70f", "", "bone"),
        ("B60s", "", "bone"),
        ("H70h", "", "bone"),
        ("Br64d", "", "bone"),
        ("U75u", "", "bone"),
        ("BONE", "", "bone"),
        ("BONEPLUS2", "", "bone"),
        ("EDGE", "", "bone"),
        ("FC30", "", "bone"),
        ("FC81", "", "bone"),
        ("YD", "Philips", "bone"),
        ("Bl57d", "", "lung"),
        ("LUNG", "", "lung"),
        ("FC52", "", "lung"),
        ("L", "Philips Medical Systems", "lung"),
        ("B30f", "", None),
        ("Br40d", "", None),
        ("B50f", "", None),  # sharp, for lung or bone: the description decides
        ("STANDARD", "", None),
        ("FC13", "", None),
        ("L", "", None),  # one letter means nothing without the maker
        ("B", "Philips", None),
        ("", "", None),
    ],
)
def test_kernel_names(kernel: str, manufacturer: str, kind: str | None) -> None:
    assert kernel_kind(kernel, manufacturer) == kind


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("Bone 2.0 H70h", "bone"),
        ("KNOCHEN_1.0", "bone"),
        ("Lunge 1.0 Bl57", "lung"),
        ("CHEST LUNG 1.25", "lung"),
        ("Lungenembolie 1.0 Br40", None),  # a vessel study, not the lungs
        ("Lung bone", None),
        ("Abdomen 3.0", None),
    ],
)
def test_descriptions(description: str, kind: str | None) -> None:
    assert description_kind(description) == kind
