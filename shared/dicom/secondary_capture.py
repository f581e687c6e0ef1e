"""Pictures (JPEG, or anything Pillow reads) to Secondary Capture Image Storage instances.

A baseline JPEG is kept as it is, encapsulated in the JPEG Baseline transfer syntax, so no
quality is lost to a second compression. Any other picture (progressive or 12-bit JPEG, PNG,
CMYK, ...) is decoded and stored uncompressed. Patient and study details come from
:class:`PatientStudy`; an existing Study Instance UID files the picture into that study.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, model_validator
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import validate_value

from shared.dicom.convert import DEFAULT_MAX_PIXELS, ConversionError
from shared.dicom.files import replace_atomically
from shared.dicom.jpeg import JpegFrame, read_jpeg_frame
from shared.files import file_error_reason

# The VR each text field is validated against, so a bad value fails here with the field's name.
_FIELD_VRS = {
    "patient_name": "PN",
    "patient_id": "LO",
    "accession_number": "SH",
    "referring_physician": "PN",
    "requesting_physician": "PN",
    "study_id": "SH",
    "study_description": "LO",
    "series_description": "LO",
    "study_instance_uid": "UI",
}


class PatientStudy(BaseModel):
    """Who and what the picture belongs to; text is validated against its DICOM VR."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    patient_name: str
    patient_id: str
    patient_birth_date: date | None = None
    patient_sex: Literal["M", "F", "O"] | None = None
    accession_number: str = ""
    referring_physician: str = ""
    requesting_physician: str = ""
    study_id: str = ""
    study_description: str = ""
    series_description: str = ""
    study_instance_uid: str | None = None

    @model_validator(mode="after")
    def _values_fit_their_vr(self) -> PatientStudy:
        for field, vr in _FIELD_VRS.items():
            value = getattr(self, field)
            if value:
                try:
                    validate_value(vr, value, config.RAISE)
                except ValueError as error:
                    raise ValueError(f"{field}: {error}") from None
        return self


@dataclass(frozen=True)
class SecondaryCapture:
    """The instance written: where, its UIDs, and whether the JPEG data was kept as is."""

    path: Path
    sop_instance_uid: str
    study_instance_uid: str
    transfer_syntax: str


def jpg_to_dcm(
    jpg: Path | str,
    demographics: PatientStudy,
    dst: Path | str,
    *,
    keep_jpeg: bool = True,
    series_instance_uid: str | None = None,
    instance_number: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SecondaryCapture:
    """Write ``jpg`` as a Secondary Capture instance at ``dst`` (atomically).

    With ``keep_jpeg`` (the default) baseline JPEG data is encapsulated without recompression.
    """
    source = Path(jpg)
    try:
        content = source.read_bytes()
        image = Image.open(io.BytesIO(content))
    except OSError as error:
        if isinstance(error, UnidentifiedImageError):
            raise ConversionError(source, "not a picture Pillow can read") from None
        raise ConversionError(source, file_error_reason(error)) from None
    if image.width * image.height > max_pixels:
        raise ConversionError(
            source, f"picture of {image.width}x{image.height} exceeds the limit of {max_pixels}"
        )
    frame = read_jpeg_frame(content) if image.format == "JPEG" else None
    dataset = _describe(demographics, series_instance_uid, instance_number)
    if keep_jpeg and frame is not None and frame.is_baseline:
        _set_jpeg_pixels(dataset, content, frame)
    else:
        _set_native_pixels(dataset, source, image)
    if image.format == "JPEG":
        dataset.LossyImageCompression = "01"
        dataset.LossyImageCompressionMethod = "ISO_10918_1"
    target = Path(dst)
    try:
        replace_atomically(
            target, lambda temporary: dataset.save_as(temporary, enforce_file_format=True)
        )
    except OSError as error:
        raise ConversionError(target, f"cannot write: {file_error_reason(error)}") from None
    return SecondaryCapture(
        target,
        dataset.SOPInstanceUID,
        dataset.StudyInstanceUID,
        dataset.file_meta.TransferSyntaxUID,
    )


def _describe(patient: PatientStudy, series_uid: str | None, number: int) -> Dataset:
    now = datetime.now()
    today, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    instance_uid = generate_uid()
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = instance_uid
    texts = [v for v in patient.model_dump().values() if isinstance(v, str)]
    if not all(text.isascii() for text in texts):
        dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = instance_uid
    dataset.InstanceCreationDate, dataset.InstanceCreationTime = today, time
    dataset.StudyDate, dataset.StudyTime = today, time
    dataset.ContentDate, dataset.ContentTime = today, time
    dataset.AccessionNumber = patient.accession_number
    dataset.Modality = "OT"
    dataset.ConversionType = "WSD"  # made on a workstation, not digitised film or video
    dataset.Manufacturer = ""
    dataset.ReferringPhysicianName = patient.referring_physician
    dataset.StudyDescription = patient.study_description or None
    dataset.SeriesDescription = patient.series_description or None
    dataset.PatientName = patient.patient_name
    dataset.PatientID = patient.patient_id
    birth = patient.patient_birth_date
    dataset.PatientBirthDate = birth.strftime("%Y%m%d") if birth else ""
    dataset.PatientSex = patient.patient_sex or ""
    dataset.StudyInstanceUID = UID(patient.study_instance_uid or generate_uid())
    dataset.SeriesInstanceUID = UID(series_uid or generate_uid())
    dataset.StudyID = patient.study_id
    dataset.SeriesNumber = 1
    # Type 2C; validators cannot tell that no paired body part is involved, so it is present.
    dataset.Laterality = ""
    dataset.InstanceNumber = number
    dataset.PatientOrientation = ""
    if patient.requesting_physician:
        dataset.RequestingPhysician = patient.requesting_physician
    for keyword in ("StudyDescription", "SeriesDescription"):
        if dataset[keyword].value is None:
            del dataset[keyword]  # type 3: absent rather than empty
    return dataset


def _set_image_pixel(dataset: Dataset, rows: int, columns: int, samples: int, photo: str) -> None:
    dataset.SamplesPerPixel = samples
    dataset.PhotometricInterpretation = photo
    if samples > 1:
        dataset.PlanarConfiguration = 0
    dataset.Rows, dataset.Columns = rows, columns
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0


def _set_jpeg_pixels(dataset: Dataset, content: bytes, frame: JpegFrame) -> None:
    _set_image_pixel(dataset, frame.rows, frame.columns, frame.components, frame.photometric)
    # Fragments must have even length; a trailing zero after EOI is what PS3.5 A.4 allows.
    fragment = content + b"\x00" if len(content) % 2 else content
    dataset.PixelData = encapsulate([fragment])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit


def _set_native_pixels(dataset: Dataset, source: Path, image: Image.Image) -> None:
    grey = image.mode in {"1", "L", "LA", "I", "I;16", "F"}
    try:
        picture = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise ConversionError(source, f"cannot decode the picture: {error}") from None
    rows, columns = picture.shape[:2]
    _set_image_pixel(dataset, rows, columns, 1 if grey else 3, "MONOCHROME2" if grey else "RGB")
    data = picture.tobytes()
    dataset.PixelData = data + b"\x00" if len(data) % 2 else data
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
