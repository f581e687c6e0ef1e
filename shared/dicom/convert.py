"""DICOM images to JPEG or PNG pictures and thumbnails.

The picture's format follows the extension of the name it is written to (.jpg, .jpeg or
.png). A PNG of a monochrome image with more than 8 bits stored keeps 16 bits.

Only the frame asked for is decoded, and an image larger than ``max_pixels`` per frame is
refused before any decoding, since the scan-sheet service runs this on files it received from
the network. Every failure is a :class:`ConversionError` whose ``reason`` says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from shared.dicom.files import DicomFileError, read_dataset, replace_atomically
from shared.dicom.pixels import Picture, PixelError, Window, to_picture
from shared.files import file_error_reason

DEFAULT_MAX_PIXELS = 50_000_000  # per frame; a large mammogram is about 30 million
PICTURE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
FrameChoice = int | Literal["middle", "all"]

__all__ = [
    "ConversionError",
    "FrameChoice",
    "Window",
    "dcm_to_jpg",
    "dcm_to_thumbnail",
    "picture_format",
]


class ConversionError(Exception):
    """A picture that cannot be made; ``reason`` says why in a user's words."""

    def __init__(self, source: Path | str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.reason = reason


def dcm_to_jpg(
    src: Path | str,
    dst: Path | str,
    *,
    frame: FrameChoice = "middle",
    window: Window | None = None,
    quality: int = 90,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Path]:
    """Write a picture of ``src`` in the format ``dst``'s extension names (see
    :func:`picture_format`) and return the files written.

    ``frame`` is a 1-based frame number, ``"middle"`` (the default) or ``"all"``; all frames
    go to numbered files beside ``dst`` (``name-001.jpg``, ...). ``window`` overrides the
    file's own VOI. A PNG of a monochrome image with more than 8 bits stored is 16-bit grey.
    """
    target = Path(dst)
    image_format = _format_of(target)
    dataset = _open_image(src, max_pixels)
    count = frame_count(dataset)
    deep = image_format == "PNG"
    if frame == "all":
        width = max(3, len(str(count)))
        paths = [
            target.with_name(f"{target.stem}-{n:0{width}d}{target.suffix}")
            for n in range(1, count + 1)
        ]
        for number, path in enumerate(paths, start=1):
            _save(_picture(src, dataset, number, window, deep), path, image_format, quality)
        return paths
    number = count // 2 + 1 if frame == "middle" else frame
    if not 1 <= number <= count:
        raise ConversionError(src, f"frame {number} requested, the image has {count}")
    _save(_picture(src, dataset, number, window, deep), target, image_format, quality)
    return [target]


def dcm_to_thumbnail(
    src: Path | str,
    dst: Path | str,
    *,
    size: int = 256,
    quality: int = 85,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Path:
    """Write an 8-bit thumbnail of the middle frame fitting in ``size`` x ``size``, aspect
    kept, in the format ``dst``'s extension names (see :func:`picture_format`)."""
    if size < 1:
        raise ConversionError(src, f"thumbnail size must be positive, got {size}")
    target = Path(dst)
    image_format = _format_of(target)
    dataset = _open_image(src, max_pixels)
    picture = _picture(src, dataset, frame_count(dataset) // 2 + 1, None, deep=False)
    image = Image.fromarray(picture)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    _save_image(image, target, image_format, quality)
    return target


def picture_format(path: Path | str) -> str:
    """``JPEG`` or ``PNG``, as the extension of ``path`` says; ValueError for another."""
    found = PICTURE_FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise ValueError("the name must end in .jpg, .jpeg or .png")
    return found


def frame_count(dataset: Dataset) -> int:
    """The number of frames (1 when the file does not say); ValueError when it is not a number."""
    value = dataset.get("NumberOfFrames")
    if value is None or str(value).strip() == "":
        return 1
    try:
        return max(1, int(str(value)))
    except ValueError:
        raise ValueError(f"invalid Number of Frames {str(value)!r}") from None


def _open_image(src: Path | str, max_pixels: int) -> Dataset:
    try:
        dataset = read_dataset(src, with_pixels=True)
    except DicomFileError as error:
        raise ConversionError(src, str(error).removeprefix(f"{src}: ")) from None
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        kind = dataset.get("SOPClassUID") or dataset.file_meta.get("MediaStorageSOPClassUID")
        named = f" ({UID(kind).name})" if kind else ""
        raise ConversionError(src, f"no pixel data in this file{named}")
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if dataset.get(k) is None]
    if missing:
        raise ConversionError(src, f"incomplete image description: missing {', '.join(missing)}")
    try:
        frame_count(dataset)
    except ValueError as error:
        raise ConversionError(src, f"invalid image description: {error}") from None
    pixels = int(dataset.Rows) * int(dataset.Columns)
    if pixels == 0:
        raise ConversionError(src, "the image has no rows or no columns")
    if pixels > max_pixels:
        raise ConversionError(
            src,
            f"image of {dataset.Columns}x{dataset.Rows} pixels exceeds the limit of {max_pixels}",
        )
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None:
        raise ConversionError(src, "the file meta information has no transfer syntax")
    syntax = UID(syntax)
    if syntax.is_compressed and not get_decoder(syntax).is_available:
        raise ConversionError(src, f"no decoder installed for {syntax.name} pixel data")
    return dataset


def _format_of(target: Path) -> str:
    try:
        return picture_format(target)
    except ValueError as error:
        raise ConversionError(target, str(error)) from None


def _picture(
    src: Path | str, dataset: Dataset, number: int, window: Window | None, deep: bool
) -> Picture:
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    try:
        frame: NDArray[np.generic] = pixel_array(dataset, index=number - 1, as_rgb=True)
    except (RuntimeError, ValueError, AttributeError, KeyError, NotImplementedError) as error:
        raise ConversionError(
            src, f"cannot decode the {syntax.name} pixel data: {_decoder_reason(error)}"
        ) from None
    try:
        return to_picture(frame, dataset, window, deep=deep)
    except (PixelError, ValueError, KeyError, AttributeError, IndexError) as error:
        raise ConversionError(src, f"cannot display the pixel values: {error}") from None


def _decoder_reason(error: Exception) -> str:
    """The decoding plugin's own words, without pydicom's preamble or Pillow's refusals."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Unable to decode"):
        plugins = [line.split(":", 1) for line in lines[1:]]
        lines = [text.strip() for name, text in plugins if name.strip() != "pillow"] or lines[1:]
    return " ".join(lines)[:300]


def _save(picture: Picture, path: Path, image_format: str, quality: int) -> None:
    _save_image(Image.fromarray(picture), path, image_format, quality)


def _save_image(image: Image.Image, path: Path, image_format: str, quality: int) -> None:
    try:
        replace_atomically(
            path, lambda temporary: image.save(temporary, format=image_format, quality=quality)
        )
    except OSError as error:
        raise ConversionError(path, f"cannot write: {file_error_reason(error)}") from None
