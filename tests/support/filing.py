"""Filing as the router does it, for the tests of what comes after it (the indexer, the
commands that read the index, the benchmarks): files at the router's layout, the
``instance.filed`` messages, and the audit events the router writes with them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sqlalchemy.ext.asyncio import AsyncEngine

from services.router.naming import positive_number
from services.settings import Settings, load_settings
from shared.db import audit
from shared.db.schema import instances, series, studies
from shared.messages import InstanceFiled
from tests.support import services

ACCOUNT = "smith"
FOLDER = "DOE^JANE_20261120_ACC42"


def indexer_settings(
    data_dir: Path, bus_url: str, exchange: str, database_url: str | None, **indexer: Any
) -> Settings:
    return load_settings(
        None,
        {
            "data_dir": data_dir,
            "bus": {
                "url": bus_url,
                "exchange": exchange,
                "retry_backoff": 0.05,
                "retry_backoff_max": 0.2,
                "max_attempts": 3,
                "connect_timeout": 10,
            },
            "database": {"url": database_url, "connect_timeout": 10},
            "indexer": {"batch_size": 50, "max_wait_ms": 50, "prefetch": 100, **indexer},
        },
    )


def mr_study(series_count: int, per_series: int, *, patient: str = "Doe^Jane") -> list[Dataset]:
    """A small multi-series MR study: each series its own TR, TE, flip angle and thickness."""
    study_uid = generate_uid()
    datasets = []
    for number in range(1, series_count + 1):
        series_uid = generate_uid()
        for index in range(1, per_series + 1):
            ds = Dataset()
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.PatientName, ds.PatientID, ds.PatientSex = patient, "PID-" + patient, "F"
            ds.PatientBirthDate = "19800214"
            ds.StudyDate, ds.StudyTime = "20261120", "101500"
            ds.StudyDescription, ds.AccessionNumber = "Brain MRI", "ACC42"
            ds.ReferringPhysicianName, ds.RequestingPhysician = "Smith^John", "Smith^John"
            ds.InstitutionName, ds.StationName = "General Hospital", "MR_ROOM2"
            ds.Modality, ds.SeriesNumber = "MR", number
            ds.SeriesDescription, ds.ProtocolName = f"T{number} axial", f"protocol {number}"
            ds.BodyPartExamined = "HEAD"
            ds.RepetitionTime, ds.EchoTime = 500 + 100 * number, 10 + number
            ds.InversionTime, ds.FlipAngle = 900, 15 + number
            ds.SliceThickness, ds.SpacingBetweenSlices = 1 + number / 2, 1.5 + number / 2
            ds.PixelSpacing = [0.9, 0.9]
            ds.MagneticFieldStrength, ds.SequenceName = 3, f"*tse{number}"
            ds.InstanceNumber, ds.EchoNumbers = index, 1
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.full((8, 8), index, dtype="<u2").tobytes()
            datasets.append(ds)
    return datasets


def file_instance(
    accounts_dir: Path,
    source: Path | Dataset,
    *,
    account: str = ACCOUNT,
    folder: str = FOLDER,
    received_at: datetime | None = None,
    replaced: bool = False,
    edit: Callable[[Dataset], None] | None = None,
) -> InstanceFiled:
    """Write the instance where the router would file it; the message the router publishes."""
    ds = dcmread(source) if isinstance(source, Path) else source
    if edit is not None:
        edit(ds)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    number = _number(ds, "SeriesNumber") or 0
    name = f"{number:03d}-001-{_number(ds, 'InstanceNumber') or 1:06d}.dcm"
    relative = f"{account}/{folder}/Dicom/{number:03d}_Series/{name}"
    target = accounts_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return InstanceFiled(
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        account=account,
        path=relative,
        size=target.stat().st_size,
        replaced=replaced,
        received_at=received_at or datetime.now(UTC),
        calling_ae="MR_ROOM2",
    )


def _number(ds: Dataset, keyword: str) -> int | None:
    """A number for the file name, as the router reads it: a value that is not one is none."""
    try:
        return positive_number(ds.get(keyword))
    except ValueError:
        return None


async def record_filing(engine: AsyncEngine, messages: list[InstanceFiled]) -> None:
    """The router's audit events for these filings, as it writes them."""
    async with engine.begin() as connection:
        await audit.record(
            connection,
            [
                audit.AuditEvent(
                    action=audit.Action.REPLACED if m.replaced else audit.Action.FILED,
                    service="router",
                    sop_instance_uid=m.sop_instance_uid,
                    study_instance_uid=m.study_instance_uid,
                    detail={"message": m.model_dump(mode="json")},
                )
                for m in messages
            ],
        )


def later(moment: datetime, seconds: float = 1) -> datetime:
    return moment + timedelta(seconds=seconds)


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """Rows in studies, series, instances."""
    async with engine.connect() as connection:
        return (
            (await connection.scalar(sa.select(sa.func.count()).select_from(studies))) or 0,
            (await connection.scalar(sa.select(sa.func.count()).select_from(series))) or 0,
            (await connection.scalar(sa.select(sa.func.count()).select_from(instances))) or 0,
        )


async def indexed_events(engine: AsyncEngine) -> list[audit.AuditEvent]:
    async with engine.connect() as connection:
        return await audit.history(connection, action=audit.Action.INDEXED, limit=100_000)


async def wait_for_instances(engine: AsyncEngine, count: int, within: float = 30) -> None:
    """Poll the index: the database has no event to wait on."""
    deadline = asyncio.get_running_loop().time() + within
    while (await counts(engine))[2] < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"index holds {await counts(engine)}, expected {count} instances")
        await asyncio.sleep(0.05)


def unique_exchange() -> str:
    return services.unique_name("test")
