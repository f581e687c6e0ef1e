"""A synthetic MR or CT study for the receive benchmarks: one series of 16-bit MONOCHROME2
slices.

Every slice is a complete MR (or CT) Image Storage instance in Explicit VR Little Endian with
its own SOP Instance UID, so a receiver that de-duplicates or files by UID sees a realistic
study. The pixels are a smooth phantom that changes from slice to slice, not zeros, so nothing
on the way (a compressing file system, a deduplicating store) can make the transfer cheaper
than it is.

Run on its own to write a study somewhere:
``python bench/generate.py OUT_DIR --count 100 --modality CT``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

SOP_CLASSES = {"MR": MRImageStorage, "CT": CTImageStorage}

SLICE_THICKNESS_MM = 1.0
PIXEL_SPACING_MM = 0.9


def _phantom(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius grid and base image: an ellipse of tissue in air, brighter towards the centre."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    radius = np.sqrt((x / 0.85) ** 2 + (y / 0.7) ** 2)
    base = np.clip(1.0 - radius, 0.0, 1.0) * 3000.0
    return radius, base


def _study_template(size: int, now: datetime, modality: str) -> Dataset:
    """The attributes every slice shares: patient, study, series, equipment and image pixel."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if modality == "CT" else "M"]
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = "BENCH0001"
    ds.Modality = modality
    ds.Manufacturer = "store-server bench"
    ds.ReferringPhysicianName = "Bench^Referrer"
    ds.StudyDescription = f"Synthetic {modality} study for receive benchmarks"
    ds.SeriesDescription = "T1 axial synthetic" if modality == "MR" else "Abdomen synthetic"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = SLICE_THICKNESS_MM
    if modality == "MR":
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 500
        ds.EchoTime = 15
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 1.5
    else:
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = 1500
    ds.WindowWidth = 3000
    return ds


def generate_study(folder: Path, count: int, size: int, modality: str = "MR") -> list[Path]:
    """Write ``count`` slices of ``size`` x ``size`` into ``folder``; return them in order."""
    if count < 1 or size < 1:
        raise ValueError("count and size must be at least 1")
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now()
    template = _study_template(size, now, modality)
    radius, base = _phantom(size)
    rng = np.random.default_rng(seed=count * 65_537 + size)
    paths: list[Path] = []
    for index in range(count):
        number = index + 1
        # A ring whose radius sweeps through the volume, plus noise: every slice differs.
        phase = index / max(count - 1, 1)
        ring = np.exp(-(((radius - 0.2 - 0.6 * phase) / 0.05) ** 2)) * 1500.0
        noise = rng.normal(0.0, 40.0, radius.shape)
        pixels = np.clip(base + ring + noise, 0, 65_535).astype("<u2")

        ds = Dataset()
        ds.update(template)
        sop_instance_uid = generate_uid()
        ds.SOPInstanceUID = sop_instance_uid
        ds.InstanceNumber = number
        ds.AcquisitionNumber = 1
        position = index * SLICE_THICKNESS_MM
        ds.ImagePositionPatient = [
            -size * PIXEL_SPACING_MM / 2,
            -size * PIXEL_SPACING_MM / 2,
            position,
        ]
        ds.SliceLocation = position
        ds.PixelData = pixels.tobytes()

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
        meta.MediaStorageSOPInstanceUID = sop_instance_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta

        path = folder / f"{modality}{number:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def split_study(paths: list[Path], parts: int, folder: Path) -> list[Path]:
    """Hard-link ``paths`` into ``parts`` folders of consecutive slices, one per association."""
    folders = [folder / f"part-{number}" for number in range(parts)]
    for index, path in enumerate(paths):
        # Consecutive slices, as a modality sends them; links cost no copy of the data.
        part = folders[index * parts // len(paths)]
        part.mkdir(parents=True, exist_ok=True)
        os.link(path, part / path.name)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, help="folder to write the slices into")
    parser.add_argument("--count", type=int, default=1000, help="number of slices")
    parser.add_argument("--size", type=int, default=256, help="rows = columns")
    parser.add_argument("--modality", choices=sorted(SOP_CLASSES), default="MR")
    args = parser.parse_args(argv)
    paths = generate_study(args.output, args.count, args.size, args.modality)
    print(f"{len(paths)} slices written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
