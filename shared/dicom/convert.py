"""DICOM images to JPEG or PNG pictures and thumbnails.

The picture's format follows the extension of the name it is written to (.jpg, .jpeg or
.png). A PNG of a monochrome image with more than 8 bits stored keeps 16 bits. A picture shows
the file's own VOI (its VOI LUT, else its first window) unless given a window; a thumbnail
stands for its series, and gets the window that suits the series (:mod:`shared.dicom.window`).

Only the frame asked for is read and decoded, and an image larger than ``max_pixels`` per frame
is refused before any decoding (as the data set says, and as the compressed frame's own header
says: :mod:`shared.dicom.codestream`), since the scan-sheet service runs this on files it
received from the network. A deflated file is inflated as a stream into a scratch file first,
so that its frames too are read one at a time. Every failure is a :class:`ConversionError`
whose ``reason`` says why.
"""

from __future__ import annotations

import contextlib
import io
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from shared.dicom.codestream import declared_size
from shared.dicom.files import DicomFileError, read_dataset, read_deferred, replace_atomically
from shared.dicom.inflate import DEFLATED, InflateLimitError, inflate_to_file
from shared.dicom.pixels import Picture, PixelError, Window, to_picture
from shared.dicom.preamble import file_layout
from shared.dicom.window import thumbnail_view
from shared.files import file_error_reason

DEFAULT_MAX_PIXELS = 50_000_000  # per frame; a large mammogram is about 30 million
MAX_INFLATED = 4 * 2**30  # a deflated file is inflated to a scratch file, up to this
# Values longer than this stay on disk until asked for: pixel data beyond it is read one frame
# at a time from the file; an image under it is read whole, as pydicom reads it best.
KEPT_IN_MEMORY = 16 * 2**20
CODESTREAM_HEAD = 1 << 16  # bytes of a compressed frame read to find its declared size
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
    with _opened_image(src, max_pixels) as image:
        return _write_frames(src, image, target, image_format, frame, window, quality)


def _write_frames(
    src: Path | str,
    image: _Image,
    target: Path,
    image_format: str,
    frame: FrameChoice,
    window: Window | None,
    quality: int,
) -> list[Path]:
    count = frame_count(image.dataset)
    deep = image_format == "PNG"
    if frame == "all":
        width = max(3, len(str(count)))
        paths = [
            target.with_name(f"{target.stem}-{n:0{width}d}{target.suffix}")
            for n in range(1, count + 1)
        ]
        for number, path in enumerate(paths, start=1):
            _save(_picture(src, image, number, window, deep), path, image_format, quality)
        return paths
    number = count // 2 + 1 if frame == "middle" else frame
    if not 1 <= number <= count:
        raise ConversionError(src, f"frame {number} requested, the image has {count}")
    _save(_picture(src, image, number, window, deep), target, image_format, quality)
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
    kept, in the format ``dst``'s extension names (see :func:`picture_format`), in the window
    that suits its series (:func:`shared.dicom.window.thumbnail_view`)."""
    if size < 1:
        raise ConversionError(src, f"thumbnail size must be positive, got {size}")
    target = Path(dst)
    image_format = _format_of(target)
    with _opened_image(src, max_pixels) as image:
        middle = frame_count(image.dataset) // 2 + 1
        picture = Image.fromarray(_picture(src, image, middle, None, deep=False, suited=True))
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    _save_image(picture, target, image_format, quality)
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


@dataclass(frozen=True)
class _Image:
    """An image's data set, bulk values left on disk, and the Part 10 file its frames are
    read from one at a time (None: the data set holds its pixel data)."""

    dataset: Dataset
    frames_from: Path | None


def _pixels_left_on_disk(dataset: Dataset) -> bool:
    element = dataset.get_item(0x7FE00010, keep_deferred=True)
    return isinstance(element, RawDataElement) and element.value is None and bool(element.length)


@contextlib.contextmanager
def _opened_image(src: Path | str, max_pixels: int) -> Iterator[_Image]:
    with tempfile.TemporaryDirectory(prefix="store-server-convert-") as scratch:
        yield _open_image(src, max_pixels, Path(scratch))


def _open_image(src: Path | str, max_pixels: int, scratch: Path) -> _Image:
    path = Path(src)
    try:
        layout = file_layout(path)
        syntax = read_file_meta_info(path).get("TransferSyntaxUID") if layout == "part10" else None
        if syntax in DEFLATED:
            path = inflate_to_file(path, scratch / "inflated.dcm", MAX_INFLATED)
    except OSError as error:
        raise ConversionError(src, str(DicomFileError(file_error_reason(error)))) from None
    except (InflateLimitError, zlib.error, ValueError, KeyError, AttributeError) as error:
        raise ConversionError(src, f"cannot inflate the deflated data set: {error}") from None
    try:
        if layout == "part10":
            dataset = read_deferred(path, KEPT_IN_MEMORY)
            image = _Image(dataset, path if _pixels_left_on_disk(dataset) else None)
        else:  # files without the Part 10 header are read whole, as dcmdump reads them
            image = _Image(read_dataset(path, with_pixels=True), None)
    except DicomFileError as error:
        raise ConversionError(src, str(error).removeprefix(f"{path}: ")) from None
    _check_image(src, image, max_pixels)
    return image


def _check_image(src: Path | str, image: _Image, max_pixels: int) -> None:
    dataset = image.dataset
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
    if syntax.is_encapsulated:
        _check_codestream(src, image, max_pixels)
    elif image.frames_from is not None:
        _check_native_length(src, dataset)


def _check_native_length(src: Path | str, dataset: Dataset) -> None:
    """Pixel data read a frame at a time from the file must hold every frame it describes."""
    element = dataset.get_item(0x7FE00010, keep_deferred=True)
    assert isinstance(element, RawDataElement)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    bits = int(dataset.BitsAllocated) * samples * frame_count(dataset)
    needed = (int(dataset.Rows) * int(dataset.Columns) * bits + 7) // 8
    if element.length < needed:
        raise ConversionError(
            src,
            f"the number of bytes of pixel data is less than expected: {element.length}, "
            f"where the image description needs {needed}",
        )


def _check_codestream(src: Path | str, image: _Image, max_pixels: int) -> None:
    """Refuse a compressed frame whose own header asks for more pixels than the data set
    describes or the limit allows: the decoder would allocate what the header says."""
    dataset = image.dataset
    element = dataset.get_item(0x7FE00010, keep_deferred=True)
    if element is None:
        return
    if isinstance(element, RawDataElement) and element.value is None:
        assert image.frames_from is not None  # deferred: left in the Part 10 file
        with image.frames_from.open("rb") as handle:
            handle.seek(element.value_tell)
            head = _first_fragment_head(handle)
    else:
        head = _first_fragment_head(io.BytesIO(dataset.PixelData))
    declared = declared_size(head) if head else None
    if declared is None:
        return
    columns, rows = declared
    if columns * rows > max_pixels:
        raise ConversionError(
            src,
            f"the compressed frame declares {columns}x{rows} pixels, beyond the limit of "
            f"{max_pixels}",
        )
    if columns > int(dataset.Columns) or rows > int(dataset.Rows):
        raise ConversionError(
            src,
            f"the compressed frame declares {columns}x{rows} pixels but the image is "
            f"{dataset.Columns}x{dataset.Rows}",
        )


def _first_fragment_head(handle: BinaryIO) -> bytes:
    """The first bytes of the first fragment after the basic offset table ('' if none)."""
    for _ in range(2):  # the offset table's item, then the first fragment's
        item = handle.read(8)
        if len(item) < 8:
            return b""
        group, element, length = struct.unpack("<HHL", item)
        if (group, element) != (0xFFFE, 0xE000):
            return b""
        if _ == 0:
            handle.seek(length, io.SEEK_CUR)
    return handle.read(min(length, CODESTREAM_HEAD))


def _format_of(target: Path) -> str:
    try:
        return picture_format(target)
    except ValueError as error:
        raise ConversionError(target, str(error)) from None


def _picture(
    src: Path | str,
    image: _Image,
    number: int,
    window: Window | None,
    deep: bool,
    *,
    suited: bool = False,
) -> Picture:
    """Frame ``number`` as a picture; ``suited``: in the window that suits the series."""
    dataset = image.dataset
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    source = image.frames_from or dataset  # from the file, only this frame is read
    try:
        frame: NDArray[np.generic] = pixel_array(source, index=number - 1, as_rgb=True)
    except (
        RuntimeError,
        ValueError,
        AttributeError,
        KeyError,
        NotImplementedError,
        EOFError,
        struct.error,
    ) as error:
        raise ConversionError(
            src, f"cannot decode the {syntax.name} pixel data: {_decoder_reason(error)}"
        ) from None
    try:
        if suited:
            frame, window = thumbnail_view(frame, dataset, number)
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
