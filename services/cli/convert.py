"""``store-server convert``: DICOM to a JPEG or PNG picture or thumbnail, and a picture to
DICOM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from services.cli.options import positive_integer
from shared.dicom.convert import (
    DEFAULT_MAX_PIXELS,
    ConversionError,
    FrameChoice,
    Window,
    dcm_to_jpg,
    dcm_to_thumbnail,
    picture_format,
)
from shared.dicom.secondary_capture import PatientStudy, jpg_to_dcm

_PATIENT_FLAGS = {
    "patient_name": "--patient-name",
    "patient_id": "--patient-id",
    "patient_birth_date": "--birth-date",
    "patient_sex": "--sex",
    "accession_number": "--accession",
    "referring_physician": "--referring-physician",
    "requesting_physician": "--requesting-physician",
    "study_id": "--study-id",
    "study_description": "--study-description",
    "series_description": "--series-description",
    "study_instance_uid": "--study-uid",
}


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("convert", help="DICOM to JPEG/thumbnail, picture to DICOM")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    jpg = kinds.add_parser(
        "jpg",
        help="a JPEG or PNG picture of a DICOM image",
        description="A picture of a DICOM image, JPEG or PNG as DST's extension says; a PNG "
        "of an image with more than 8 bits stored is 16-bit grey.",
    )
    jpg.add_argument("src", type=Path, metavar="SRC")
    jpg.add_argument("dst", type=_picture_path, metavar="DST", help=".jpg, .jpeg or .png")
    jpg.add_argument(
        "--frame", type=_frame, default="middle", help="frame number (from 1), middle or all"
    )
    jpg.add_argument(
        "--window", nargs=2, type=float, metavar=("CENTER", "WIDTH"), help="VOI window"
    )
    jpg.add_argument("--quality", type=_quality, default=90, help="JPEG quality, 1-95 (default 90)")
    _add_max_pixels(jpg)
    jpg.set_defaults(handler=run_jpg)

    thumbnail = kinds.add_parser("thumbnail", help="a thumbnail of the middle frame")
    thumbnail.add_argument("src", type=Path, metavar="SRC")
    thumbnail.add_argument("dst", type=_picture_path, metavar="DST", help=".jpg, .jpeg or .png")
    thumbnail.add_argument(
        "--size", type=positive_integer, default=256, help="longest side (default 256)"
    )
    _add_max_pixels(thumbnail)
    thumbnail.set_defaults(handler=run_thumbnail)

    dcm = kinds.add_parser("dcm", help="a Secondary Capture instance from a picture")
    dcm.add_argument("jpg", type=Path, metavar="JPG")
    dcm.add_argument("dst", type=Path, metavar="DST")
    for field, flag in _PATIENT_FLAGS.items():
        required = field in ("patient_name", "patient_id")
        dcm.add_argument(flag, dest=field, required=required, help=field.replace("_", " "))
    dcm.add_argument(
        "--decode", action="store_true", help="store decoded pixels instead of the JPEG data"
    )
    _add_max_pixels(dcm)
    dcm.set_defaults(handler=run_dcm)


def run_jpg(args: argparse.Namespace) -> int:
    try:
        window = Window(*args.window) if args.window else None
    except ValueError as error:
        print(f"store-server convert: --window: {error}", file=sys.stderr)
        return 2
    try:
        written = dcm_to_jpg(
            args.src,
            args.dst,
            frame=args.frame,
            window=window,
            quality=args.quality,
            max_pixels=args.max_pixels,
        )
    except ConversionError as error:
        return _fail(error)
    for path in written:
        print(path)
    return 0


def run_thumbnail(args: argparse.Namespace) -> int:
    try:
        print(dcm_to_thumbnail(args.src, args.dst, size=args.size, max_pixels=args.max_pixels))
    except ConversionError as error:
        return _fail(error)
    return 0


def run_dcm(args: argparse.Namespace) -> int:
    given = {field: getattr(args, field) for field in _PATIENT_FLAGS}
    try:
        patient = PatientStudy.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"{_PATIENT_FLAGS.get(str(e['loc'][0]), '') if e['loc'] else ''} {e['msg']}".strip()
            for e in error.errors()
        )
        print(f"store-server convert dcm: {problems}", file=sys.stderr)
        return 2
    try:
        written = jpg_to_dcm(
            args.jpg, patient, args.dst, keep_jpeg=not args.decode, max_pixels=args.max_pixels
        )
    except ConversionError as error:
        return _fail(error)
    print(f"{written.path} SOP Instance UID {written.sop_instance_uid}")
    return 0


def _frame(text: str) -> FrameChoice:
    if text == "middle":
        return "middle"
    if text == "all":
        return "all"
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a frame number (from 1), middle or all")
    return int(text)


def _picture_path(text: str) -> Path:
    try:
        picture_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return Path(text)


def _quality(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 95:
        raise argparse.ArgumentTypeError(f"{text!r}: JPEG quality is 1 to 95")
    return int(text)


def _add_max_pixels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        type=positive_integer,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS})",
    )


def _fail(error: Exception) -> int:
    print(f"store-server convert: {error}", file=sys.stderr)
    return 1
