"""Instances made to order, and helpers to see what the router filed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from services.router.accounts import add_account
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, StartServer

__all__ = ["StartServer"]


def make_instance(
    folder: Path,
    *,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    raw: dict[int | None, tuple[str, bytes]] | None = None,
    tags: dict[str, object] | None = None,
    **keywords: object,
) -> Path:
    """A small MR instance; ``keywords`` set tags (None removes one), ``raw`` sets encoded
    values as a modality would write them in its character set."""
    sop_uid = sop_uid or str(generate_uid())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    values: dict[str, Any] = {
        "SOPClassUID": str(MRImageStorage),
        "SOPInstanceUID": sop_uid,
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid or generate_uid(),
        "PatientName": "DOE^JANE",
        "PatientID": "P0001",
        "StudyDate": "20261125",
        "StudyTime": "101500",
        "AccessionNumber": "A1234",
        "StudyID": "1",
        "Modality": "MR",
        "SeriesNumber": 1,
        "SeriesDescription": "T1 axial",
        "InstanceNumber": 1,
        "Rows": 8,
        "Columns": 8,
        "BitsAllocated": 16,
        "BitsStored": 12,
        "HighBit": 11,
        "PixelRepresentation": 0,
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "PixelData": bytes(128),
    }
    values.update(tags or {})
    values.update(keywords)
    for keyword, value in values.items():
        if value is not None:
            setattr(dataset, keyword, value)
    for tag, (vr, encoded) in (raw or {}).items():
        assert tag is not None  # written byte for byte, whatever pydicom would make of it
        dataset[tag] = RawDataElement(Tag(tag), vr, len(encoded), encoded, 0, False, True)
    path = folder / f"{sop_uid}.dcm"
    folder.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def filed_files(server: ServerUnderTest) -> list[Path]:
    root = server.settings.accounts_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def wait_for_filed(server: ServerUnderTest, count: int, within: float = 60) -> list[Path]:
    wait_until(
        lambda: len(filed_files(server)) >= count and not server.spool,
        within,
        f"{count} filed instances (have {len(filed_files(server))})",
    )
    return filed_files(server)


def add_accounts(server: ServerUnderTest, accounts: dict[str, list[str]]) -> None:
    async def work() -> None:
        assert server.running is not None
        async with server.running.index.begin() as connection:
            for name, physicians in accounts.items():
                await add_account(connection, name, physicians)

    server.call(work())


def relative(server: ServerUnderTest, paths: list[Path]) -> list[str]:
    root = server.settings.accounts_dir
    return [str(path.relative_to(root)) for path in paths]


@pytest.fixture
def study_uid() -> Iterator[str]:
    yield generate_uid()


def sop_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
