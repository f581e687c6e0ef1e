"""CPU time per instance of the router and the indexer, and how routers scale.

The budget on MR_small-sized instances (pydicom's ``MR_small.dcm``: a full MR header, 64 x 64
pixels) is 1 ms of CPU per instance for the router and 1 ms for the indexer. Each step runs in
this process on a queue filled before it starts (the in-process bus), so the CPU time counted
(user and system, every thread of the process, from ``getrusage``) is the step's own, not the
receiver's or the broker's; the wall time is given beside it.

- ``router``: instances spooled as the receiver spools them, ``instance.received`` published
  for each, the router started, until the spool is empty (every instance filed).
- ``indexer``: instances filed where the router files them, ``instance.filed`` for each,
  the indexer started, until the index holds every one.
- with ``--scale``: one, then two ``store-server router`` processes on RabbitMQ and
  PostgreSQL against a queue filled before they start; the rate of two against one. The rate
  is taken between the 20th and the 90th percent of the instances filed, so that the
  processes' start-up (a second or two of imports and connections, two processes starting
  at once on two cores) and the last batch are left out; at least 3000 instances. Twice: one
  study of four series (each series numbered by one router at a time, by design), and four
  studies of four series sent together, as the queue of a site with several modalities holds.

    .venv/bin/python bench/consumer_cpu.py --count 1000 [--postgres URL] [--scale] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import sqlalchemy as sa
from index_rate import filed_message
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from services.app import start
from services.receiver.intake import FILING_TAGS, filing_header
from services.settings import Settings, load_settings
from shared.bus import open_bus
from shared.bus.amqp_queues import delete_topology
from shared.db.engine import open_index
from shared.db.schema import instances
from shared.db.scratch import drop_database, scratch_database
from shared.dicom.encoding import check_file
from shared.log import configure_logging
from shared.messages import InstanceReceived, Message

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
BUDGET_MS = {"router": 1.0, "indexer": 1.0}
SERIES = 4
SCALE_COUNT = 3000  # instances in the scaling runs, at least: start-up is left out by share
TIME_LIMIT = 600.0  # seconds a step may take before the run is called failed


@dataclass
class Result:
    step: str
    database: str
    instances: int
    seconds: float
    cpu_ms_per_instance: float
    budget_ms: float | None
    instances_per_second: float


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def instances_like_mr_small(count: int, studies: int = 1) -> list[pydicom.Dataset]:
    """``count`` instances of ``studies`` studies of :data:`SERIES` series, interleaved."""
    template = pydicom.dcmread(get_testdata_file("MR_small.dcm"))  # type: ignore[arg-type]
    study_uids = [generate_uid() for _ in range(studies)]
    series = [[generate_uid() for _ in range(SERIES)] for _ in range(studies)]
    made: list[pydicom.Dataset] = []
    for index in range(count):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        study, within = index % studies, index // studies
        ds.StudyInstanceUID = study_uids[study]
        ds.SeriesInstanceUID = series[study][within % SERIES]
        ds.SeriesNumber, ds.InstanceNumber = within % SERIES + 1, within // SERIES + 1
        ds.RequestingPhysician = "Bench^Physician"
        made.append(ds)
    return made


def spooled(spool: Path, datasets: list[pydicom.Dataset]) -> list[Message]:
    spool.mkdir(parents=True, exist_ok=True)
    messages: list[Message] = []
    for index, ds in enumerate(datasets):
        name = f"bench-{index:08d}.dcm"
        ds.save_as(spool / name)
        captured = check_file(spool / name, capture=FILING_TAGS).captured
        messages.append(
            InstanceReceived(
                sop_instance_uid=ds.SOPInstanceUID,
                sop_class_uid=ds.SOPClassUID,
                transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
                spool_name=name,
                size=(spool / name).stat().st_size,
                received_at=datetime.now(UTC),
                calling_ae="BENCH",
                called_ae="STORE_SERVER",
                peer_address="127.0.0.1",
                peer_port=0,
                # As the receiver hands it on, from its walk of the data set.
                filing_header=filing_header(captured) if captured else None,
            )
        )
    return messages


def filed(accounts: Path, datasets: list[pydicom.Dataset]) -> list[Message]:
    messages: list[Message] = []
    for ds in datasets:
        number = int(ds.SeriesNumber)
        name = f"{number:03d}-001-{int(ds.InstanceNumber):06d}.dcm"
        relative = f"bench/BENCH/Dicom/{number:03d}_Series/{name}"
        (accounts / relative).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(accounts / relative)
        messages.append(filed_message(accounts, relative, ds))
    return messages


async def timed(
    settings: Settings, role: str, messages: list[Message], done: Callable[[], Awaitable[bool]]
) -> tuple[float, float]:
    """Wall and CPU seconds from the role's start, with its queue full, until ``done()``."""
    engine = await open_index(settings.database_url, 30)  # migrated outside the timing
    await engine.dispose()
    running = await start(settings, {role})
    try:
        for message in messages:
            await running.bus.publish(message)
        wall, cpu = time.perf_counter(), cpu_seconds()
        while True:  # polled: the step has no event to say it is done
            if await done():
                return time.perf_counter() - wall, cpu_seconds() - cpu
            if time.perf_counter() - wall > TIME_LIMIT:
                raise TimeoutError(f"{role}: not done after {TIME_LIMIT} s")
            await asyncio.sleep(0.02)
    finally:
        await running.stop()


async def one_step(step: str, database: str, url: str | None, count: int) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"bench-{step}-") as folder:
        work = Path(folder)
        settings = load_settings(
            None,
            {
                "data_dir": work,
                "database": {"url": url or f"sqlite:///{work / 'index.sqlite'}"},
                "log": {"level": "warning", "to_file": False},
            },
        )
        datasets = instances_like_mr_small(count)
        if step == "router":
            messages = spooled(settings.spool_dir, datasets)

            async def done() -> bool:
                return not any(name.endswith(".dcm") for name in os.listdir(settings.spool_dir))

        else:
            messages = filed(settings.accounts_dir, datasets)
            engine = await open_index(settings.database_url, 30)

            async def done() -> bool:
                async with engine.connect() as connection:
                    held = await connection.scalar(
                        sa.select(sa.func.count()).select_from(instances)
                    )
                return held == count

        try:
            wall, cpu = await timed(settings, step, messages, done)
        finally:
            if step == "indexer":
                await engine.dispose()
    return Result(
        step,
        database,
        count,
        round(wall, 2),
        round(cpu * 1000 / count, 2),
        BUDGET_MS[step],
        round(count / wall, 1),
    )


async def routers_rate(processes: int, count: int, postgres: str, studies: int) -> float:
    """Instances filed per second by ``processes`` router processes on RabbitMQ and
    PostgreSQL, from a queue filled before they start: between 20% and 90% filed."""
    scratch = await scratch_database(postgres, "bench_cpu")
    if scratch is None:
        raise ConnectionError(f"PostgreSQL does not answer at {postgres}")
    exchange = f"bench-{uuid.uuid4().hex[:12]}"
    started: list[asyncio.subprocess.Process] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-routers-") as folder:
            work = Path(folder)
            environment = {
                **os.environ,
                "STORE_SERVER_DATA_DIR": str(work),
                "STORE_SERVER_BUS__URL": AMQP_URL,
                "STORE_SERVER_BUS__EXCHANGE": exchange,
                "STORE_SERVER_DATABASE__URL": scratch,
                "STORE_SERVER_LOG__LEVEL": "warning",
            }
            settings = load_settings(
                None, {"data_dir": work, "bus": {"url": AMQP_URL, "exchange": exchange}}
            )
            engine = await open_index(scratch, 30)  # migrated outside the timing
            await engine.dispose()
            messages = spooled(settings.spool_dir, instances_like_mr_small(count, studies))
            bus = open_bus(settings.bus)
            await bus.start()  # declares the queues, so nothing published is dropped
            try:
                for message in messages:
                    await bus.publish(message)
            finally:
                await bus.close()
            command = [str(Path(sys.executable).with_name("store-server")), "router"]
            for _ in range(processes):
                started.append(await asyncio.create_subprocess_exec(*command, env=environment))
            marks: dict[float, float] = {}  # share filed: when it was first seen
            while len(marks) < 2:  # polled: filing has no event to say how far it is
                left = sum(name.endswith(".dcm") for name in os.listdir(settings.spool_dir))
                for share in (0.2, 0.9):
                    if share not in marks and count - left >= share * count:
                        marks[share] = time.perf_counter()
                if any(process.returncode is not None for process in started):
                    raise RuntimeError("a router exited during the run")
                await asyncio.sleep(0.02)
            await _stopped(started)  # before their data directory goes
            return 0.7 * count / (marks[0.9] - marks[0.2])
    finally:
        await _stopped(started)
        await delete_topology(AMQP_URL, exchange)
        await drop_database(postgres, scratch.rsplit("/", 1)[1])


async def _stopped(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 60)


async def bench(args: argparse.Namespace) -> list[Result]:
    results = []
    for step in ("router", "indexer"):
        results.append(await one_step(step, "sqlite", None, args.count))
        if args.no_postgres:
            continue
        scratch = await scratch_database(args.postgres, "bench_cpu")
        if scratch is None:
            print(f"PostgreSQL does not answer at {args.postgres}: skipped", file=sys.stderr)
            continue
        try:
            results.append(await one_step(step, "postgresql", scratch, args.count))
        finally:
            await drop_database(args.postgres, scratch.rsplit("/", 1)[1])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="instances per step")
    parser.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    parser.add_argument(
        "--scale", action="store_true", help="also: two router processes against one"
    )
    args = parser.parse_args(argv)
    configure_logging(None, "warning")
    results = asyncio.run(bench(args))
    scaling: dict[str, float] = {}
    if args.scale:
        count = max(args.count, SCALE_COUNT)
        for studies in (1, 4):
            queue = f"{studies} stud{'y' if studies == 1 else 'ies'}"
            for processes in (1, 2):
                rate = asyncio.run(routers_rate(processes, count, args.postgres, studies))
                scaling[f"{queue}: routers x{processes} inst/s"] = round(rate, 1)
            scaling[f"{queue}: two against one"] = round(
                scaling[f"{queue}: routers x2 inst/s"] / scaling[f"{queue}: routers x1 inst/s"], 2
            )
    table = sys.stderr if args.json else sys.stdout
    print(
        f"{'step':<9}{'database':<12}{'inst':>6}{'seconds':>9}{'inst/s':>9}"
        f"{'CPU ms/inst':>13}{'budget':>8}",
        file=table,
    )
    for r in results:
        verdict = "ok" if r.budget_ms and r.cpu_ms_per_instance <= r.budget_ms else "OVER"
        print(
            f"{r.step:<9}{r.database:<12}{r.instances:>6}{r.seconds:>9.2f}"
            f"{r.instances_per_second:>9.1f}{r.cpu_ms_per_instance:>13.2f}"
            f"{r.budget_ms:>6.1f} {verdict}",
            file=table,
        )
    for name, figure in scaling.items():
        print(f"{name}: {figure}", file=table)
    if args.json:
        print(json.dumps({"steps": [asdict(r) for r in results], "scaling": scaling}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
