"""The receivers the receive benchmark starts, each fresh for every run, and how each is
stopped with its resource use (CPU seconds and peak memory, from ``wait4``).

- ``storescp``: DCMTK, ``--fork``, bit-preserving, no fsync: the speed of the network and
  the file system, as a reference;
- ``orthanc``: Orthanc from Debian, its own configuration (SQLite index, files synced): what a
  site would otherwise pick;
- ``receiver``: our production receiver process alone, publishing to RabbitMQ with confirms;
- ``receiver+consumers``: the production topology: the same receiver, with two routers, an
  indexer and a scan-sheet worker running as processes of their own on the same machine
  (RabbitMQ, PostgreSQL);
- ``run``: the embedded server whole in one process (in-memory bus, SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from shared.bus import TOPOLOGY
from shared.bus.amqp_queues import delete_topology
from shared.db.engine import create_engine
from shared.db.schema import instances
from shared.db.scratch import create_database, drop_database

HOST = "127.0.0.1"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
STOP_TIMEOUT = 60.0
STORESCP, ORTHANC, RECEIVER, CONSUMERS, EMBEDDED = (
    "storescp",
    "orthanc",
    "receiver",
    "receiver+consumers",
    "run",
)
ALL = (STORESCP, ORTHANC, RECEIVER, CONSUMERS, EMBEDDED)
AE_TITLES = {STORESCP: "STORESCP", ORTHANC: "ORTHANC"}
# The production topology's consumers: two routers, as docker-compose.yml runs them.
CONSUMER_PROCESSES = ("router", "router", *(c.role for c in TOPOLOGY if c.role != "router"))


@dataclass
class Usage:
    """What a stopped process used: exit code, CPU seconds (user + system, with the children
    it waited for), peak resident memory in MB (of the process itself)."""

    code: int
    cpu_seconds: float
    peak_mb: float


@dataclass
class Started:
    """A target running: its port, AE title, where it keeps what it received."""

    port: int
    ae_title: str
    received: Path
    pattern: str
    process: subprocess.Popen[bytes]
    log: Path
    helpers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    index_url: str | None = None  # ours: where to see an instance indexed
    usage: Usage | None = None
    helper_usage: dict[str, Usage] = field(default_factory=dict)
    child_usage: dict[str, Usage] = field(default_factory=dict)  # see measure_children


def cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used so far, with the children it waited for (so
    that start-up can be left out of what a transfer costs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (``VmHWM``). ``wait4``'s ``ru_maxrss`` would
    not do: it keeps the high-water mark of the Python fork the process was exec'ed from."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


# The shared services our production topology runs on, by process name: their CPU is part of
# what an instance costs (Orthanc's index and storage are inside its own process).
SERVICES = {"rabbitmq": "beam.smp", "postgresql": "postgres"}


def services_cpu() -> dict[str, float]:
    """CPU seconds RabbitMQ and PostgreSQL have used so far (PostgreSQL's backends that ended
    are in the postmaster's children's time)."""
    totals = dict.fromkeys(SERVICES, 0.0)
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = comm.read_text().strip()
            for service, command in SERVICES.items():
                if name == command:
                    totals[service] += cpu_seconds(int(comm.parent.name))
    return totals


def children(pid: int) -> list[int]:
    """The processes ``pid`` started and has not yet reaped (``store-server run``'s consumers)."""
    with contextlib.suppress(OSError):
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in listed.split()]
    return []


def measure_children(running: Started) -> None:
    """Read the CPU and peak memory of ``running``'s child processes while they still run: once
    stopped, their CPU is in the parent's (it waits for them) and their peak is gone. Called
    when the work is done; :func:`started` then takes their CPU out of the parent's."""
    for number, pid in enumerate(children(running.process.pid)):
        seconds = cpu_seconds(pid)
        running.child_usage[f"consumers-{number}" if number else "consumers"] = Usage(
            0, seconds, peak_mb(pid) or 0.0
        )


def stop(process: subprocess.Popen[bytes]) -> Usage:
    """SIGTERM the process group, SIGKILL if it lingers; its resource use."""
    peak = peak_mb(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Usage(process.returncode, cpu, peak if peak is not None else usage.ru_maxrss / 1024)


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def _ours(role: str) -> list[str]:
    return [str(Path(sys.executable).with_name("store-server")), role]


@contextlib.contextmanager
def started(target: str, port: int, work: Path) -> Iterator[Started]:
    """Start ``target`` on ``port`` with its files under ``work``; stop it on leaving."""
    log = work / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORE_SERVER_")}
    exchange, database = "", ""
    helpers: dict[str, subprocess.Popen[bytes]] = {}
    if target == STORESCP:
        received = work / "received"
        received.mkdir()
        command = ["storescp", "--fork", "-aet", "STORESCP", "+xa", "-dhl", "+B", "-pdu"]
        command += ["131072", "--output-directory", str(received), str(port)]
        process = _spawn(command, DCMTK_ENV, log)
        running = Started(port, "STORESCP", received, "*", process, log)
    elif target == ORTHANC:
        received = work / "orthanc-storage"
        config = {
            "Name": "bench",
            "StorageDirectory": str(received),
            "IndexDirectory": str(work / "orthanc-index"),
            "DicomPort": port,
            "HttpPort": port + 1 if port < 65535 else port - 1,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StorageCompression": False,
            "Plugins": [],
        }
        (work / "orthanc.json").write_text(json.dumps(config))
        # Orthanc is built on DCMTK, which reads TCP_NODELAY from the environment too: without
        # it every response waits for the peer's delayed ACK (about 40 ms an instance).
        process = _spawn(["Orthanc", str(work / "orthanc.json")], DCMTK_ENV, log)
        running = Started(port, "ORTHANC", received, "*", process, log)
    else:
        data_dir = work / "data"
        flags = ["--data-dir", str(data_dir)]
        if target == EMBEDDED:
            command = [*_ours("run"), "--host", HOST, "--port", str(port), *flags]
            command += ["--bus", "memory://"]
        else:
            exchange = f"bench-{uuid.uuid4().hex[:12]}"
            env["STORE_SERVER_BUS__EXCHANGE"] = exchange
            command = [*_ours("receiver"), "--host", HOST, "--port", str(port), *flags]
            command += ["--bus", AMQP_URL]
        index_url = f"sqlite:///{data_dir / 'index.sqlite'}"
        if target == CONSUMERS:
            database = f"bench_{uuid.uuid4().hex[:12]}"
            index_url = asyncio.run(create_database(f"{POSTGRES}/postgres", database))
            for number, role in enumerate(CONSUMER_PROCESSES):
                worker = [*_ours(role), *flags, "--bus", AMQP_URL, "--database", index_url]
                name = f"{role}-{number}"
                helpers[name] = _spawn(
                    worker, env | {"STORE_SERVER_INSTANCE": name}, work / f"{name}.log"
                )
        process = _spawn(command, env, log)
        # Each instance is in the spool or, once a router has filed it, in accounts/.
        running = Started(port, "STORE_SERVER", data_dir, "*.dcm", process, log, helpers)
        running.index_url = index_url if target in (CONSUMERS, EMBEDDED) else None
    try:
        yield running
    finally:
        usage = stop(running.process)
        if running.child_usage:
            spent = sum(child.cpu_seconds for child in running.child_usage.values())
            usage = Usage(usage.code, usage.cpu_seconds - spent, usage.peak_mb)
            running.helper_usage.update(running.child_usage)
        running.usage = usage
        for name, helper in helpers.items():
            running.helper_usage[name] = stop(helper)
        if exchange:
            try:
                asyncio.run(delete_topology(AMQP_URL, exchange))
            except Exception as error:  # the run's outcome stands; say what was left behind
                print(f"left behind: exchange {exchange}: {error}", file=sys.stderr)
        if database:
            asyncio.run(drop_database(f"{POSTGRES}/postgres", database))


async def _count_indexed(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            held = await connection.scalar(sa.select(sa.func.count()).select_from(instances))
            return int(held or 0)
    except (OSError, sa.exc.SQLAlchemyError):  # not created yet: nothing indexed
        return 0
    finally:
        await engine.dispose()


def wait_indexed(running: Started, expected: int, timeout: float) -> None:
    """Until every instance is filed (the spool empty) and indexed; ours only."""
    assert running.index_url is not None
    spool = running.received / "spool"
    deadline = time.monotonic() + timeout
    while True:
        filed = not any(spool.glob("*.dcm")) if spool.exists() else True
        if filed and asyncio.run(_count_indexed(running.index_url)) >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not filed and indexed within {timeout:.0f}s")
        if any(h.poll() is not None for h in [running.process, *running.helpers.values()]):
            raise RuntimeError("a server process exited during the run")
        time.sleep(0.05)


def stored(running: Started) -> int:
    """How many instances the target holds."""
    if running.ae_title == "ORTHANC":
        return sum(1 for path in running.received.rglob("*") if path.is_file())
    return sum(1 for path in running.received.rglob(running.pattern) if path.is_file())
