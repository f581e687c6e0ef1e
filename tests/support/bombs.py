"""Files a hostile sender would make: small on the wire, huge once read."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

CHUNK = 1 << 20
PRIVATE_BLOB = (0x0009, 0x1010)


def header(**attributes: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Bomb^Deflate", "BOMB1", "OT"
    # A 2 x 2 image: its 8 bytes of pixel data come after the huge value.
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def padded_file(path: Path, ds: Dataset, blob_length: int, *, deflated: bool) -> Path:
    """``ds``, then a private OB element of ``blob_length`` zero bytes, then a small native
    Pixel Data: a Part 10 file, deflated (a 1 GiB blob deflates to about 1 MB) or not. Written
    as a stream: the blob is never in memory whole, here either."""
    syntax = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    blob_header = struct.pack("<HH2s2xL", *PRIVATE_BLOB, b"OB", blob_length)
    pixels = struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OW", 8) + struct.pack(
        "<4H", 0, 1000, 2000, 4000
    )
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with path.open("wb") as out:
        out.write(_preamble_and_meta(ds, syntax))

        def emit(data: bytes) -> None:
            out.write(compressor.compress(data) if deflated else data)

        emit(_encoded(ds) + blob_header)
        for start in range(0, blob_length, CHUNK):
            emit(bytes(min(CHUNK, blob_length - start)))
        emit(pixels)
        if deflated:
            out.write(compressor.flush())
    return path


def big_multiframe(path: Path, frames: int, side: int) -> Path:
    """A native 16-bit multi-frame image of ``frames`` frames of ``side`` x ``side``, each
    frame a gradient; written a frame at a time."""
    ds = header(Modality="MR")
    ds.Rows = ds.Columns = side
    ds.NumberOfFrames = frames
    frame = (np.arange(side * side, dtype="<u4") % 4096).astype("<u2").tobytes()
    with path.open("wb") as out:
        out.write(_preamble_and_meta(ds, ExplicitVRLittleEndian) + _encoded(ds))
        out.write(struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OW", len(frame) * frames))
        for _ in range(frames):
            out.write(frame)
    return path


def _preamble_and_meta(ds: Dataset, syntax: UID) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_file_meta_info(encoded, meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + encoded.getvalue()


def _encoded(ds: Dataset) -> bytes:
    """``ds`` in Explicit VR Little Endian (what a deflated data set inflates to)."""
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, ds)
    return encoded.getvalue()
