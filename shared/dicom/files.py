"""Reading DICOM files without leaking parser errors, and replacing files atomically."""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from shared.dicom.preamble import AfterPrefix, file_layout
from shared.files import file_error_reason

# Values larger than this are left on disk until something asks for them, so reading a header
# never pulls a huge (or hostile, over-long) element into memory.
DEFER_SIZE = "1 MB"


class DicomFileError(Exception):
    """A file that cannot be read as DICOM; the message says which file and why."""


def read_dataset(path: Path | str, *, with_pixels: bool = False) -> FileDataset:
    """Read a DICOM file, turning every parser failure into :class:`DicomFileError`.

    Without ``with_pixels`` reading stops before the pixel data, which is what header work
    needs and keeps large images cheap. See :func:`_read` for files without a preamble.
    """
    return _read(
        Path(path),
        stop_before_pixels=not with_pixels,
        defer_size=None if with_pixels else DEFER_SIZE,
    )


def read_deferred(path: Path | str, defer_size: int) -> FileDataset:
    """Read every element of a DICOM file, pixel data included, leaving each value longer
    than ``defer_size`` bytes on disk until it is asked for: what a listing needs."""
    return _read(Path(path), stop_before_pixels=False, defer_size=defer_size)


def _read(path: Path, *, stop_before_pixels: bool, defer_size: int | str | None) -> FileDataset:
    """A Part 10 file, or one without the preamble (:mod:`shared.dicom.preamble`), read as
    dcmdump reads it; a data set with no file meta information gets the transfer syntax it
    was read in, as the toolkit's commands need one."""
    try:
        layout = file_layout(path)
        if layout is None:
            raise DicomFileError(f"{path}: not a DICOM file")
        if layout == "prefix-first":
            with AfterPrefix(str(path)) as source:
                dataset = pydicom.dcmread(source, defer_size, stop_before_pixels, force=True)
        else:
            dataset = pydicom.dcmread(path, defer_size, stop_before_pixels, force=layout == "bare")
    except InvalidDicomError:
        raise DicomFileError(f"{path}: not a DICOM file") from None
    except OSError as error:
        raise DicomFileError(f"{path}: {file_error_reason(error)}") from None
    # pydicom reports truncated or malformed encodings as any of these.
    except (EOFError, ValueError, struct.error, KeyError, TypeError, OverflowError) as error:
        raise DicomFileError(f"{path}: malformed DICOM: {error}") from None
    if "TransferSyntaxUID" not in dataset.file_meta:
        implicit, little_endian = dataset.original_encoding
        if little_endian:
            syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            dataset.file_meta.TransferSyntaxUID = syntax
    return dataset


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then move it into place durably.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    # mkstemp makes the file private; the result should have the old file's mode, or the usual.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    temporary.chmod(mode)
    try:
        write(temporary)
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
