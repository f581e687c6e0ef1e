"""How fast filed instances are indexed: SQLite and PostgreSQL, one per transaction or batched.

A synthetic study (``--count`` small MR instances over ``--series`` series) is filed into a
temporary accounts tree as the router files it, and its ``instance.filed`` messages are queued
on the in-process bus before the indexer starts, so the figure is the indexer's and the
database's, not the broker's. For each database and mode the indexer starts on a fresh index,
and the time from its start until the index holds every instance is measured; a run counts
only if the index then holds exactly one row per instance. PostgreSQL runs when it answers at
``--postgres`` (a scratch database is created and dropped).

    .venv/bin/python bench/index_rate.py --count 2000 [--json] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from services.app import start
from services.settings import Settings, load_settings
from shared.db.engine import open_index
from shared.db.schema import instances
from shared.db.scratch import drop_database, scratch_database
from shared.log import configure_logging
from shared.messages import InstanceFiled

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MODES = {"single": 1, "batched": 200}


@dataclass
class Result:
    database: str
    mode: str
    batch_size: int
    instances: int
    seconds: float | None = None
    instances_per_second: float | None = None
    error: str | None = None


def file_study(accounts: Path, count: int, series_count: int) -> list[InstanceFiled]:
    """Write ``count`` instances where the router would; their messages."""
    study_uid = generate_uid()
    series_uids = [generate_uid() for _ in range(series_count)]
    messages = []
    for index in range(count):
        number = index % series_count + 1
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uids[number - 1]
        ds.PatientName, ds.PatientID, ds.StudyDate = "Bench^Patient", "BENCH-1", "20261125"
        ds.StudyDescription, ds.Modality, ds.SeriesNumber = "Bench", "MR", number
        ds.RepetitionTime, ds.EchoTime, ds.SliceThickness = 500, 15, 1.0
        ds.InstanceNumber, ds.Rows, ds.Columns = index + 1, 8, 8
        ds.PixelSpacing = [0.9, 0.9]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = bytes(128)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        relative = f"bench/BENCH_20261125/Dicom/{number:03d}_Bench/{number:03d}-001-{index:06d}.dcm"
        (accounts / relative).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(accounts / relative, enforce_file_format=True)
        messages.append(filed_message(accounts, relative, ds))
    return messages


def filed_message(accounts: Path, relative: str, ds: Dataset) -> InstanceFiled:
    """What the router publishes for ``ds``, filed at ``relative`` in the accounts tree."""
    return InstanceFiled(
        sop_instance_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
        transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
        account="bench",
        path=relative,
        size=(accounts / relative).stat().st_size,
        received_at=datetime.now(UTC),
        calling_ae="BENCH",
    )


async def measure(settings: Settings, messages: list[InstanceFiled]) -> float:
    """Seconds from the indexer's start until the index holds every message's instance."""
    engine = await open_index(settings.database_url, 30)  # migrated outside the timing
    await engine.dispose()
    started = time.perf_counter()
    running = await start(settings, {"indexer"})
    try:
        for message in messages:
            await running.bus.publish(message)
        while True:
            async with running.index.connect() as connection:
                held = await connection.scalar(sa.select(sa.func.count()).select_from(instances))
            if held == len(messages):
                return time.perf_counter() - started
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"only {held} of {len(messages)} indexed after 600 s")
            await asyncio.sleep(0.05)
    finally:
        await running.stop()


async def run_one(
    database: str, url: str, mode: str, work: Path, messages: list[InstanceFiled]
) -> Result:
    batch = MODES[mode]
    result = Result(database, mode, batch, len(messages))
    settings = load_settings(
        None,
        {
            "data_dir": work,
            "database": {"url": url},
            "log": {"level": "warning"},
            "indexer": {"batch_size": batch, "prefetch": max(batch, 32), "max_wait_ms": 50},
        },
    )
    try:
        seconds = await measure(settings, messages)
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as error:
        result.error = f"{type(error).__name__}: {error}"
        return result
    result.seconds = round(seconds, 3)
    result.instances_per_second = round(len(messages) / seconds, 1)
    return result


async def bench(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="index-rate-") as folder:
        work = Path(folder)
        messages = file_study(work / "accounts", args.count, args.series)
        for mode in MODES:
            sqlite_url = f"sqlite:///{work / f'index-{mode}.sqlite'}"
            results.append(await run_one("sqlite", sqlite_url, mode, work, messages))
            if args.no_postgres:
                continue
            scratch = await scratch_database(args.postgres, "bench_index")
            if scratch is None:
                results.append(Result("postgresql", mode, MODES[mode], args.count, error="down"))
                continue
            try:
                results.append(await run_one("postgresql", scratch, mode, work, messages))
            finally:
                await drop_database(args.postgres, scratch.rsplit("/", 1)[1])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="instances to index")
    parser.add_argument("--series", type=int, default=8, help="series they are spread over")
    parser.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    args = parser.parse_args(argv)
    configure_logging(None, "warning")  # a log line per batch would be timed too
    results = asyncio.run(bench(args))
    table = sys.stderr if args.json else sys.stdout
    print(
        f"{'database':<12}{'mode':<9}{'batch':>6}{'instances':>10}{'seconds':>9}{'inst/s':>9}",
        file=table,
    )
    for r in results:
        figures = (
            f"{r.seconds:>9.2f}{r.instances_per_second:>9.1f}"
            if r.seconds
            else (f"  FAILED: {r.error}")
        )
        print(f"{r.database:<12}{r.mode:<9}{r.batch_size:>6}{r.instances:>10}{figures}", file=table)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
