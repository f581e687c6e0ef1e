"""How long a workstation's C-FIND takes as the archive grows: the same queries against a small
index and a large one (a million instances by default), in one invocation.

Each index is filled directly with synthetic rows (200 instances a study, four series a study,
dates over three years, names from a fixed list), as the indexer would leave them, with a
small header per instance. The receiver alone is then started on it, and each kind of query is
sent by pynetdicom's SCU over a fresh association, ``--repeat`` times; the median time from
request to final response is reported per kind and size, with the ratio of the large index to
the small. A query through an index stays near 1x; one that must read every study grows with
the archive, and is shown as such (Modalities in Study alone).

    .venv/bin/python bench/query_rate.py [--sizes 10000,1000000] [--repeat 15] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset
from pynetdicom import AE
from sqlalchemy.ext.asyncio import AsyncEngine

from services.app import start
from services.settings import load_settings
from shared.db.engine import open_index
from shared.db.schema import instances, patients, series, studies
from shared.db.scratch import drop_database, scratch_database
from shared.folding import fold
from shared.log import configure_logging

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
PER_STUDY, SERIES_PER_STUDY = 200, 4
FAMILIES = ["Muller", "Dupont", "Rossi", "Garcia", "Nowak", "Smith", "Jensen", "Silva"]
GIVEN = ["Anna", "Hans", "Marie", "Luca", "Eva", "Jan", "Sofia", "Paul"]
MODALITIES = ["MR", "CT", "US", "CR"]


def uid(*parts: int) -> str:
    return "1.2.826.0.1.3680043.9.7777." + ".".join(map(str, parts))


async def fill(engine: AsyncEngine, count: int) -> dict[str, str]:
    """Write ``count`` instances; the keys the queries will ask for."""
    random.seed(7)
    now = datetime.now(UTC)
    studies_count = max(1, count // PER_STUDY)
    start_day = date(2024, 1, 1)
    patient_rows, study_rows, series_rows, instance_rows = [], [], [], []
    middle = studies_count // 2 or 1
    for s in range(1, studies_count + 1):
        family = FAMILIES[s % len(FAMILIES)]
        name = f"{family}{s}^{random.choice(GIVEN)}"
        patient_id = f"PID{s:08d}"
        patient_rows.append(
            {
                "id": s,
                "identity": f"{s:064d}",
                "patient_id": patient_id,
                "issuer": "",
                "name": name,
                "birth_date": "19700101",
                "sex": "F",
                "search_text": fold(f"{name} {patient_id}"),
                "updated_at": now,
            }
        )
        modality = MODALITIES[s % len(MODALITIES)]
        study_rows.append(
            {
                "id": s,
                "study_instance_uid": uid(s),
                "patient_fk": s,
                "study_date": (start_day + timedelta(days=s % 1000)).strftime("%Y%m%d"),
                "study_time": "101500",
                "description": "Brain",
                "accession_number": f"ACC{s:08d}",
                "modalities": modality,
                "account": "smith",
                "study_folder": f"smith/{name}_{s}",
                "instance_count": PER_STUDY,
                "series_count": SERIES_PER_STUDY,
                "last_received_at": now,
            }
        )
        for k in range(1, SERIES_PER_STUDY + 1):
            series_id = (s - 1) * SERIES_PER_STUDY + k
            series_rows.append(
                {
                    "id": series_id,
                    "series_instance_uid": uid(s, k),
                    "study_fk": s,
                    "number": k,
                    "modality": modality,
                    "instance_count": PER_STUDY // SERIES_PER_STUDY,
                }
            )
            for n in range(1, PER_STUDY // SERIES_PER_STUDY + 1):
                instance_rows.append(
                    {
                        "sop_instance_uid": uid(s, k, n),
                        "series_fk": series_id,
                        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.4",
                        "instance_number": n,
                        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                        "path": f"smith/{name}_{s}/Dicom/{k:03d}/{n:06d}.dcm",
                        "size": 131072,
                        "received_at": now,
                        "header": {"00280010": {"vr": "US", "Value": [256]}},
                    }
                )
        if len(instance_rows) >= 50_000 or s == studies_count:
            async with engine.begin() as connection:
                for table, rows in (
                    (patients, patient_rows),
                    (studies, study_rows),
                    (series, series_rows),
                    (instances, instance_rows),
                ):
                    if rows:
                        await connection.execute(table.insert(), rows)
            patient_rows, study_rows, series_rows, instance_rows = [], [], [], []
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execute(sa.text("COMMIT"))
            await connection.execute(sa.text("ANALYZE"))
    else:
        async with engine.begin() as connection:
            await connection.execute(sa.text("ANALYZE"))
    return {
        "study_uid": uid(middle),
        "series_uid": uid(middle, 2),
        "patient_id": f"PID{middle:08d}",
        "name_prefix": f"{FAMILIES[middle % len(FAMILIES)].upper()}{middle}*",
        "date": (start_day + timedelta(days=middle % 1000)).strftime("%Y%m%d"),
        "accession": f"ACC{middle:08d}",
    }


def queries(keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each kind of query: its identifier (level and keys)."""
    return {
        "study by Study Instance UID": {
            "QueryRetrieveLevel": "STUDY",
            "StudyInstanceUID": keys["study_uid"],
        },
        "studies by Patient ID": {
            "QueryRetrieveLevel": "STUDY",
            "PatientID": keys["patient_id"],
            "StudyInstanceUID": "",
        },
        "studies by name prefix": {
            "QueryRetrieveLevel": "STUDY",
            "PatientName": keys["name_prefix"],
            "StudyInstanceUID": "",
        },
        "studies of one day": {
            "QueryRetrieveLevel": "STUDY",
            "StudyDate": keys["date"],
            "StudyInstanceUID": "",
        },
        "study by Accession Number": {
            "QueryRetrieveLevel": "STUDY",
            "AccessionNumber": keys["accession"],
            "StudyInstanceUID": "",
        },
        "series of a study": {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": keys["study_uid"],
            "SeriesInstanceUID": "",
            "SeriesNumber": "",
        },
        "images of a series": {
            "QueryRetrieveLevel": "IMAGE",
            "SeriesInstanceUID": keys["series_uid"],
            "SOPInstanceUID": "",
            "Rows": "",
        },
        "studies by modality (a scan)": {
            "QueryRetrieveLevel": "STUDY",
            "ModalitiesInStudy": "US",
            "StudyInstanceUID": "",
        },
    }


def timed_finds(port: int, identifier: dict[str, str], repeat: int) -> tuple[list[float], int]:
    """``repeat`` C-FINDs on one association: the seconds each took from request to final
    response, and the matches of the last."""
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(STUDY_ROOT)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORE_SERVER")
    if not assoc.is_established:
        raise RuntimeError("association refused")
    ds = Dataset()
    for keyword, value in identifier.items():
        setattr(ds, keyword, value)
    times, matches = [], 0
    try:
        for _ in range(repeat):
            matches, status = 0, -1
            started = time.perf_counter()
            for answer, _found in assoc.send_c_find(ds, STUDY_ROOT):
                if answer.Status in (0xFF00, 0xFF01):
                    matches += 1
                else:
                    status = int(answer.Status)
            times.append(time.perf_counter() - started)
            if status != 0:
                raise RuntimeError(f"status 0x{status:04X}")
    finally:
        assoc.release()
    return times, matches


def _log_to_file(folder: Path) -> Path:
    """Log at info to a file only (the ``find`` events carry the receiver's own timings)."""
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "query.log"
    configure_logging(log_file, "info", open(os.devnull, "w"))  # noqa: SIM115
    return log_file


def _lookups(log_file: Path) -> list[float]:
    """The receiver's own time to look each query up, from its log (``find`` events)."""
    found = []
    for line in log_file.read_text().splitlines() if log_file.exists() else []:
        event = json.loads(line)
        if event.get("event") == "find":
            found.append(float(event["lookup_ms"]))
    return found


async def measure(url: str, count: int, repeat: int, folder: Path) -> dict[str, Any]:
    engine = await open_index(url, 30)
    started = time.perf_counter()
    keys = await fill(engine, count)
    filled = time.perf_counter() - started
    await engine.dispose()
    log_file = _log_to_file(folder)
    settings = load_settings(
        None,
        {
            "data_dir": folder,
            "receiver": {"host": "127.0.0.1", "port": 0},
            "database": {"url": url},
            "log": {"level": "info", "file": log_file},
        },
    )
    running = await start(settings, ("receiver",), heartbeat=False)
    try:
        assert running.receiver is not None
        port = running.receiver.ports[0]
        results: dict[str, Any] = {}
        for name, identifier in queries(keys).items():
            logged = _lookups(log_file)
            times, matches = await asyncio.to_thread(timed_finds, port, identifier, repeat)
            lookups = _lookups(log_file)[len(logged) :]
            results[name] = {
                "median_ms": statistics.median(times) * 1000,
                "lookup_ms": statistics.median(lookups),
                "matches": matches,
            }
    finally:
        await running.stop()
        configure_logging(None, "warning", sys.stderr)  # the folder is about to go
    return {"instances": count, "fill_seconds": filled, "queries": results}


UrlFor = Callable[[Path], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]


async def one_database(
    name: str, url_for: UrlFor, sizes: list[int], repeat: int
) -> list[dict[str, Any]]:
    measured = []
    for count in sizes:
        with tempfile.TemporaryDirectory() as folder:
            url, cleanup = await url_for(Path(folder))
            try:
                result = await measure(url, count, repeat, Path(folder) / "data")
            finally:
                await cleanup()
        result["database"] = name
        measured.append(result)
        print(
            f"{name}: {count} instances filled in {result['fill_seconds']:.0f} s", file=sys.stderr
        )
    return measured


def report(measured: list[dict[str, Any]]) -> None:
    by_database: dict[str, list[dict[str, Any]]] = {}
    for result in measured:
        by_database.setdefault(result["database"], []).append(result)
    for database, results in by_database.items():
        small, large = results[0], results[-1]
        sizes = f"{small['instances']} vs {large['instances']} instances"
        print(f"\n{database}: median ms per C-FIND, request to final response, {sizes}")
        print("(lookup: the receiver's own time, from its log; round trip: as the SCU saw it)")
        header = f"{'query':<32} {'lookup':>14} {'ratio':>7} {'round trip':>14} {'ratio':>7}"
        print(f"{header} {'matches':>8}")
        for name, found in large["queries"].items():
            before = small["queries"][name]
            print(
                f"{name:<32} {before['lookup_ms']:>6.1f} {found['lookup_ms']:>7.1f} "
                f"{found['lookup_ms'] / before['lookup_ms']:>6.2f}x "
                f"{before['median_ms']:>6.1f} {found['median_ms']:>7.1f} "
                f"{found['median_ms'] / before['median_ms']:>6.2f}x {found['matches']:>8}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging(None, "warning", sys.stderr)
    sizes = [int(size) for size in args.sizes.split(",")]

    async def sqlite(folder: Path) -> tuple[str, Callable[[], Awaitable[None]]]:
        async def nothing() -> None:
            return None

        return f"sqlite:///{folder}/index.sqlite", nothing

    async def postgres(folder: Path) -> tuple[str, Callable[[], Awaitable[None]]]:
        url = await scratch_database(POSTGRES_URL, "bench_query")
        if url is None:
            raise RuntimeError(f"PostgreSQL does not answer at {POSTGRES_URL}")
        name = url.rsplit("/", 1)[1]

        async def drop() -> None:
            await drop_database(POSTGRES_URL, name)

        return url, drop

    async def everything() -> list[dict[str, Any]]:
        measured = await one_database("SQLite", sqlite, sizes, args.repeat)
        if args.postgres:
            measured += await one_database("PostgreSQL", postgres, sizes, args.repeat)
        return measured

    measured = asyncio.run(everything())
    if args.json:
        print(json.dumps(measured, indent=2))
    else:
        report(measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
