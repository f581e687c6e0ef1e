"""The grey levels of a series thumbnail: the window that suits what the series is for.

A scan sheet shows one picture per series, so its window has to suit what the series was
reconstructed for: a bone-kernel CT series shown in the soft-tissue window that comes first
in its file is white bone on grey, and a file without a window needs one chosen. In order:

1. The image's VOI LUT Sequence (0028,3010), applied by :func:`shared.dicom.pixels.to_picture`.
2. The file's windows (those of an enhanced multi-frame image: the frame's own), one chosen
   for the series. A bone series (its kernel, else its description, says so:
   :func:`series_kind`) takes the window explained as bone, else the widest that reaches
   cortical bone, else the CT bone default below; a lung series the window explained as lung,
   else a lung-like one, else the first; any other series the first, the modality's own
   choice. Kinds apply to CT only: elsewhere the first window is taken.
3. No window: CT in Hounsfield units by kind (bone, lung, other: ``CT_DEFAULTS``); any other
   modality the 0.5-99.5 percentile range of the frame's values, so that a few hot pixels do
   not flatten the picture.

Windows are in modality units (rescale slope and intercept first); MONOCHROME1 is inverted
and colour kept as colour, without a window, by :mod:`shared.dicom.pixels`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from shared.dicom.pixels import MONOCHROME, Window

SeriesKind = Literal["bone", "lung"]

CT_DEFAULTS: dict[SeriesKind | None, Window] = {
    "bone": Window(500, 2000),
    "lung": Window(-600, 1500),
    None: Window(40, 400),
}
BONE_TOP = 800.0  # HU: a window for bone reaches at least this high (cortical bone, ~1000+)
LUNG_CENTER = -300.0  # HU: a window centred at or below this shows the lungs
LUNG_WIDTH = 800.0  # ... when it is at least this wide
PERCENTILES = (0.5, 99.5)
PERCENTILE_SAMPLE = 1 << 20  # values the percentiles are taken from: memory stays bounded

# Reconstruction kernels that say bone or lung. Sharp kernels serve both, so only names that
# say which, by maker, are listed; anything else leaves the choice to the series description.
# Checked against: Siemens SOMATOM operator manuals (B50s-B80s "higher sharpness" for spine,
# extremities and thorax, U70u-U90u for bone; names are a family letter, a subgroup letter,
# a two-digit sharpness and a rotation-time letter, subgroup "l" lung-optimised: Br64, Bl57),
# and open kernel tables used to sort CT series (GE, Philips, Canon/Toshiba).
# Siemens: B body, H head, I/J iterative body/head, U ultra-high resolution, Q quantitative,
# D dual energy, V vascular; sharpness 60 and up is bone (B60f, B70f, H70h, U75u, Hr64).
SIEMENS_KERNEL = re.compile(r"([BDHIJQUV])([A-Z]?)(\d\d)[A-Z]?", re.IGNORECASE)
SIEMENS_BONE_FROM = 60
SIEMENS_LUNG_SUBGROUP = "L"
# Canon (Toshiba): FC and a number; FC30/31/35 bone, FC81 high-resolution bone, FC5x lung,
# FC86 high-resolution lung.
CANON_KERNEL = re.compile(r"FC(\d\d)[A-Z]?", re.IGNORECASE)
CANON_BONE = frozenset({30, 31, 35, 81})
CANON_LUNG = frozenset({50, 51, 52, 53, 55, 56, 86})
# Philips: one or two letters, which mean something else from another maker, so only when
# the Manufacturer is Philips. E/EA/EB bone, YC/YD high-resolution bone; L lung, YA/YB
# high-resolution lung. (D is taken for bone by some tables and for lung by others: left out.)
PHILIPS_BONE = frozenset({"E", "EA", "EB", "YC", "YD"})
PHILIPS_LUNG = frozenset({"L", "YA", "YB"})
# Any maker, the start of a kernel name: GE's BONE, BONEPLUS, BONEPLUS2, EDGE and LUNG.
BONE_KERNEL_PREFIXES = ("BONE", "EDGE")
LUNG_KERNEL_PREFIXES = ("LUNG",)
# Whole words of a series description ("Bone 2.0 H70h", "Lunge 1.0 Bl57") or of a window's
# explanation; whole, so that "Lungenembolie" (a vessel study) or "Knochenmark" is not taken.
BONE_WORDS = frozenset({"BONE", "BONES", "KNOCHEN"})
LUNG_WORDS = frozenset({"LUNG", "LUNGS", "LUNGE", "LUNGEN"})


@dataclass(frozen=True)
class FileWindow:
    """One of the file's windows (modality units), its explanation upper-cased, its place
    among the windows, and whether it is a frame's own (enhanced multi-frame)."""

    window: Window
    explanation: str
    position: int
    per_frame: bool


def thumbnail_view(
    frame: NDArray[np.generic], dataset: Dataset, number: int
) -> tuple[NDArray[np.generic], Window | None]:
    """The frame ``number`` (1-based) as :func:`~shared.dicom.pixels.to_picture` should see it
    and the window it should apply; None: the file's own VOI LUT or first window, chosen and
    applied (VOI LUT Function included) by ``to_picture``, or the frame's full range."""
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    voi_lut = dataset.get("VOILUTSequence")
    if photometric not in MONOCHROME or (voi_lut is not None and len(voi_lut)):
        return frame, None
    ct = str(dataset.get("Modality", "")).strip().upper() == "CT"
    kind = series_kind(dataset, number) if ct else None
    windows = file_windows(dataset, number)
    if windows:
        chosen = suited_window(windows, kind)
        if chosen is None:  # a bone series whose windows all leave bone white
            return frame, _in_stored_units(CT_DEFAULTS["bone"], dataset, number)
        if chosen.position == 0 and not chosen.per_frame:
            return frame, None
        return frame, _in_stored_units(chosen.window, dataset, number)
    if ct:
        return frame, _in_stored_units(CT_DEFAULTS[kind], dataset, number)
    return clipped_to_percentiles(frame), None


def suited_window(windows: Sequence[FileWindow], kind: SeriesKind | None) -> FileWindow | None:
    """The window for a series of this kind; None: a bone series none of them suits."""
    if kind == "bone":
        explained = [w for w in windows if _says(w.explanation, BONE_WORDS)]
        reaching = [w for w in windows if w.window.center + w.window.width / 2 >= BONE_TOP]
        if explained or reaching:
            return explained[0] if explained else max(reaching, key=lambda w: w.window.width)
        return None
    if kind == "lung":
        explained = [w for w in windows if _says(w.explanation, LUNG_WORDS)]
        lung_like = [
            w for w in windows if w.window.center <= LUNG_CENTER and w.window.width >= LUNG_WIDTH
        ]
        return (explained or lung_like or list(windows))[0]
    return windows[0]


def series_kind(dataset: Dataset, number: int = 1) -> SeriesKind | None:
    """Bone or lung as the reconstruction kernel says (the frame's own in an enhanced
    multi-frame image), else as the series description says, else None."""
    kernel = dataset.get("ConvolutionKernel")
    if kernel is None:
        reconstruction = _frame_item(dataset, number, "CTReconstructionSequence")
        kernel = None if reconstruction is None else reconstruction.get("ConvolutionKernel")
    by_kernel = kernel_kind(_first(kernel), str(dataset.get("Manufacturer", "")))
    return by_kernel or description_kind(str(dataset.get("SeriesDescription", "")))


def kernel_kind(kernel: str, manufacturer: str = "") -> SeriesKind | None:
    """Bone or lung as a reconstruction kernel's name says (the lists above), else None."""
    name = kernel.strip()
    siemens = SIEMENS_KERNEL.fullmatch(name)
    if siemens is not None:
        if siemens.group(2).upper() == SIEMENS_LUNG_SUBGROUP:
            return "lung"
        return "bone" if int(siemens.group(3)) >= SIEMENS_BONE_FROM else None
    canon = CANON_KERNEL.fullmatch(name)
    if canon is not None:
        number = int(canon.group(1))
        return "bone" if number in CANON_BONE else "lung" if number in CANON_LUNG else None
    if "PHILIPS" in manufacturer.upper():
        if name.upper() in PHILIPS_BONE:
            return "bone"
        if name.upper() in PHILIPS_LUNG:
            return "lung"
    return _either(
        any(w.startswith(BONE_KERNEL_PREFIXES) for w in _words(name)),
        any(w.startswith(LUNG_KERNEL_PREFIXES) for w in _words(name)),
    )


def description_kind(description: str) -> SeriesKind | None:
    """Bone or lung when a series description names one of them (and not both)."""
    return _either(_says(description, BONE_WORDS), _says(description, LUNG_WORDS))


def file_windows(dataset: Dataset, number: int = 1) -> list[FileWindow]:
    """The valid windows of the file, else those of frame ``number``'s Frame VOI LUT."""
    windows = _windows_of(dataset, per_frame=False)
    if windows:
        return windows
    frame_voi = _frame_item(dataset, number, "FrameVOILUTSequence")
    return [] if frame_voi is None else _windows_of(frame_voi, per_frame=True)


def clipped_to_percentiles(frame: NDArray[np.generic]) -> NDArray[np.generic]:
    """The frame with its values clipped to their 0.5-99.5 percentiles (taken on a sample of
    at most ``PERCENTILE_SAMPLE`` values), so that its full range is that span; unchanged
    when the span is empty (a frame of one value nearly everywhere)."""
    values = frame.reshape(-1)
    sample = values[:: max(1, values.size // PERCENTILE_SAMPLE)].astype(np.float64)
    if sample.size == 0:
        return frame
    # "nearest": values the frame holds, so that they go back to its type unchanged
    found = np.percentile(sample, PERCENTILES, method="nearest")
    low, high = found.astype(frame.dtype)
    if not high > low:  # NaN included
        return frame
    clipped: NDArray[np.generic] = np.clip(
        frame, low, high, out=frame if frame.flags.writeable else None
    )
    return clipped


def _windows_of(item: Dataset, *, per_frame: bool) -> list[FileWindow]:
    centers = _values(item.get("WindowCenter"))
    widths = _values(item.get("WindowWidth"))
    explanations = _values(item.get("WindowCenterWidthExplanation"))
    windows = []
    for position, (center, width) in enumerate(zip(centers, widths, strict=False)):
        try:
            window = Window(float(center), float(width))
        except (TypeError, ValueError, OverflowError):
            continue  # a window the file gets wrong is passed over, as viewers do
        if not (math.isfinite(window.center) and math.isfinite(window.width)):
            continue
        explanation = str(explanations[position]) if position < len(explanations) else ""
        windows.append(FileWindow(window, explanation.upper(), position, per_frame))
    return windows


def _in_stored_units(window: Window, dataset: Dataset, number: int) -> Window:
    """``window`` for pixels whose modality transformation ``to_picture`` applies: the file's
    own as it is; an enhanced image's (the frame's Pixel Value Transformation, which
    ``to_picture`` does not read) in stored values."""
    if any(k in dataset for k in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence")):
        return window
    transformation = _frame_item(dataset, number, "PixelValueTransformationSequence")
    if transformation is None:
        return window
    try:
        slope = float(transformation.get("RescaleSlope", 1.0))
        intercept = float(transformation.get("RescaleIntercept", 0.0))
    except (TypeError, ValueError, OverflowError):
        return window
    if not (slope > 0 and math.isfinite(slope) and math.isfinite(intercept)):
        return window
    return Window((window.center - intercept) / slope, max(1.0, window.width / slope))


def _frame_item(dataset: Dataset, number: int, keyword: str) -> Dataset | None:
    """The first item of a functional group's ``keyword`` sequence for frame ``number``: the
    frame's own, else the shared one."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    groups = []
    if per_frame is not None and 1 <= number <= len(per_frame):
        groups.append(per_frame[number - 1])
    groups.extend(dataset.get("SharedFunctionalGroupsSequence") or [])
    for group in groups:
        found = group.get(keyword)
        if found is not None and len(found):
            item: Dataset = found[0]
            return item
    return None


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, MultiValue | list | tuple) else [value]


def _first(value: Any) -> str:
    """The first value as text: Siemens writes an iterative strength second (I30f\\3)."""
    values = _values(value)
    return str(values[0]) if values else ""


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Z]+", text.upper())


def _says(text: str, words: frozenset[str]) -> bool:
    return not words.isdisjoint(_words(text))


def _either(bone: bool, lung: bool) -> SeriesKind | None:
    """The one kind said, None when neither or both are."""
    return "bone" if bone and not lung else "lung" if lung and not bone else None
