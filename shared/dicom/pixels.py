"""Display maths: from stored pixel values to the picture a viewer would show.

Monochrome: Modality LUT (rescale slope/intercept or LUT sequence), then VOI (a given window,
else the file's VOI LUT sequence, else its first window, else the full range), then
MONOCHROME1 is inverted. Colour: palette lookup, and samples scaled from their bit depth.
Formulas follow PS3.3 C.11.2 (VOI LUT Function LINEAR, LINEAR_EXACT and SIGMOID).

Pictures are 8-bit; a monochrome image with more than 8 bits stored can be had as 16-bit
(the VOI output scaled to 0..65535) for a format that keeps them, such as PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut

MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
Picture = NDArray[np.unsignedinteger[Any]]  # uint8, or uint16 for a deep monochrome picture


class PixelError(ValueError):
    """Pixel values this module cannot turn into a picture (unsupported colour model, ...)."""


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (e.g. Hounsfield units for CT)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not self.width >= 1:
            raise ValueError(f"window width must be at least 1, got {self.width}")


def to_picture(
    frame: NDArray[np.generic], dataset: Dataset, window: Window | None, *, deep: bool = False
) -> Picture:
    """An 8-bit grey (rows x columns) or RGB (rows x columns x 3) picture of one frame.

    ``frame`` is one decoded frame, with colour already converted to RGB by the decoder. With
    ``deep``, a monochrome image with more than 8 bits stored gives a 16-bit grey picture.
    """
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric in MONOCHROME:
        bits = 16 if deep and _bits_stored(dataset) > 8 else 8
        grey = _voi(_modality(frame, dataset), dataset, window, bits)
        return (2**bits - 1) - grey if photometric == "MONOCHROME1" else grey
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, _palette(dataset))
        bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
        return _scale(rgb, 0.0, float(2**bits - 1), 8)
    if frame.ndim == 3 and frame.shape[-1] == 3:
        bits = int(dataset.get("BitsStored", 8))
        return _scale(frame, 0.0, float(2**bits - 1), 8)
    raise PixelError(f"photometric interpretation {photometric!r} is not supported")


def _bits_stored(dataset: Dataset) -> int:
    # Float pixel data has no Bits Stored; its range is wider than any 8 bits.
    return int(dataset.get("BitsStored", dataset.get("BitsAllocated", 8)))


def _palette(dataset: Dataset) -> Dataset:
    """The palette tables as pydicom expects them: it reads OW table data as little endian."""
    if dataset.original_encoding[1] is not False:
        return dataset
    palette = Dataset()
    for element in dataset:
        if "PaletteColorLookupTable" in element.keyword:
            palette.add_new(element.tag, element.VR, element.value)
            value = element.value
            if element.keyword.endswith("Data") and isinstance(value, bytes):
                swapped = np.frombuffer(value, dtype=">u2").astype("<u2").tobytes()
                palette[element.tag].value = swapped
    palette.set_original_encoding(False, True)
    palette.PhotometricInterpretation = "PALETTE COLOR"
    palette.BitsStored = dataset.BitsStored
    return palette


def _modality(frame: NDArray[np.generic], dataset: Dataset) -> NDArray[np.float64]:
    if frame.dtype.kind == "f":
        return frame.astype(np.float64)  # float pixel data is already in real-world units
    return np.asarray(apply_modality_lut(frame, dataset), dtype=np.float64)


def _voi(
    values: NDArray[np.float64], dataset: Dataset, window: Window | None, bits: int
) -> Picture:
    if window is not None:
        return _linear(values, window, bits)
    if "VOILUTSequence" in dataset and len(dataset.VOILUTSequence):
        lut = dataset.VOILUTSequence[0]
        looked_up = apply_voi_lut(values.astype(np.int64), dataset, prefer_lut=True)
        lut_bits = int(lut.LUTDescriptor[2])
        return _scale(looked_up, 0.0, float(2**lut_bits - 1), bits)
    file_window = _file_window(dataset)
    if file_window is not None:
        function = str(dataset.get("VOILUTFunction", "LINEAR")).strip().upper()
        if function == "SIGMOID":
            return _sigmoid(values, file_window, bits)
        if function == "LINEAR_EXACT":
            return _linear_exact(values, file_window, bits)
        return _linear(values, file_window, bits)
    return _scale(values, float(values.min()), float(values.max()), bits)


def _file_window(dataset: Dataset) -> Window | None:
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is None or width is None:
        return None
    # Several windows may be given; the first is the one the modality suggests.
    center = center[0] if isinstance(center, MultiValue) else center
    width = width[0] if isinstance(width, MultiValue) else width
    try:
        return Window(float(center), float(width))
    except (TypeError, ValueError):
        return None  # a window the file gets wrong is ignored, as viewers do


def _linear(values: NDArray[np.float64], window: Window, bits: int) -> Picture:
    center, span = window.center - 0.5, max(window.width - 1.0, 1e-9)
    return _from_unit((values - center) / span + 0.5, bits)


def _linear_exact(values: NDArray[np.float64], window: Window, bits: int) -> Picture:
    return _from_unit((values - window.center) / window.width + 0.5, bits)


def _sigmoid(values: NDArray[np.float64], window: Window, bits: int) -> Picture:
    unit = 1.0 / (1.0 + np.exp(-4.0 * (values - window.center) / window.width))
    return _from_unit(unit, bits)


def _scale(values: NDArray[np.generic], low: float, high: float, bits: int) -> Picture:
    span = high - low
    if span <= 0:
        return np.zeros(values.shape, dtype=_dtype(bits))
    return _from_unit((values.astype(np.float64) - low) / span, bits)


def _from_unit(unit: NDArray[np.float64], bits: int) -> Picture:
    """Values in 0..1 (clipped) as the picture's integers, 0..255 or 0..65535."""
    return np.rint(np.clip(unit, 0.0, 1.0) * float(2**bits - 1)).astype(_dtype(bits))


def _dtype(bits: int) -> type[np.unsignedinteger[Any]]:
    return np.uint16 if bits > 8 else np.uint8
