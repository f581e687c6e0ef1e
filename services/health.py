"""Health checks for a process without HTTP: ``store-server health`` exits 0 when healthy.

First, whether the process of that role is alive and working: its heartbeat (see
:mod:`shared.heartbeat`) is fresh, from a process that still runs, and reports no problem (a
lost broker connection, a stopped consumer). Then what the role cannot work without: the
receiver answers DICOM on its port and has disk to spool on; every process reaches its broker;
the consumers reach the index, at the schema revision this code expects. Container health
checks call the command.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
from alembic.config import Config
from alembic.script import ScriptDirectory

from services.settings import Settings
from shared.db.engine import MIGRATIONS, create_engine, current_revision, wait_for_database
from shared.dicom.net import AssociationRejected, NetError, echo
from shared.heartbeat import beat_path, judge, read_beat
from shared.hosts import check_host_name

ROLE_CHECKS = {
    "run": ("process", "receiver", "disk", "database"),
    "receiver": ("process", "receiver", "disk", "bus"),
    "router": ("process", "bus", "database", "disk"),
    "indexer": ("process", "bus", "database"),
    "forwarder": ("process", "bus", "database"),
    "scansheet": ("process", "bus", "database"),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _receiver(settings: Settings, within: float) -> Check:
    receiver = settings.receiver
    host = "127.0.0.1" if receiver.host in ("0.0.0.0", "") else receiver.host
    try:
        result = echo(
            host,
            receiver.port,
            called_aet=receiver.ae_title,
            calling_aet=receiver.ae_title,
            timeout=within,
        )
    except NetError as error:
        # A refusal is still an answer: the listener is up and applying its policy.
        return Check("receiver", isinstance(error, AssociationRejected), str(error))
    return Check(
        "receiver",
        result.ok,
        f"C-ECHO {result.category} in {result.round_trip * 1000:.0f} ms on port {receiver.port}",
    )


def _process(settings: Settings, role: str) -> Check:
    path = beat_path(settings.data_dir, role, settings.instance)
    ok, detail = judge(read_beat(path), datetime.now(UTC))
    return Check("process", ok, f"{detail} ({path.name})")


def _disk(settings: Settings) -> Check:
    spool = settings.spool_dir if settings.spool_dir.exists() else settings.data_dir
    if not spool.exists():
        return Check("disk", False, f"{spool} does not exist")
    free_mb = shutil.disk_usage(spool).free // 2**20
    wanted = settings.receiver.min_free_disk_mb
    return Check("disk", free_mb >= wanted, f"{free_mb} MiB free in {spool} (minimum {wanted})")


async def _bus(settings: Settings, within: float) -> Check:
    if settings.bus.url.startswith("memory://"):
        return Check("bus", True, "in-process (memory://): lives inside the server process")
    try:
        check_host_name("bus.url", settings.bus.url)
    except ConnectionError as error:
        return Check("bus", False, str(error))
    try:
        connection = await aio_pika.connect(settings.bus.url, timeout=within)
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
        return Check("bus", False, f"broker unreachable: {type(error).__name__}: {error}")
    await connection.close()
    return Check("bus", True, "broker reachable")


def expected_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(Path(MIGRATIONS)))
    return ScriptDirectory.from_config(config).get_current_head()


async def _database(settings: Settings, within: float) -> Check:
    url = settings.database_url
    index_file = Path(url.removeprefix("sqlite:///"))
    # Checked first, since opening an SQLite index that is not there would create it.
    if url.startswith("sqlite:///") and not await asyncio.to_thread(index_file.exists):
        return Check("database", False, f"no index at {index_file}")
    try:
        check_host_name("database.url", url)
    except ConnectionError as error:
        return Check("database", False, str(error))
    engine = create_engine(url)
    try:
        await wait_for_database(engine, within)
        revision = await current_revision(engine)
    except ConnectionError as error:
        return Check("database", False, str(error))
    finally:
        await engine.dispose()
    head = expected_revision()
    if revision != head:
        return Check(
            "database",
            False,
            f"schema at {revision or 'nothing'}, this code needs {head} (store-server db upgrade)",
        )
    return Check("database", True, f"reachable, schema at {revision}")


async def check(settings: Settings, role: str, within: float = 5.0) -> list[Check]:
    """The checks of ``role``, in order."""
    results: list[Check] = []
    for name in ROLE_CHECKS[role]:
        if name == "process":
            results.append(await asyncio.to_thread(_process, settings, role))
        elif name == "receiver":
            results.append(await asyncio.to_thread(_receiver, settings, within))
        elif name == "disk":
            results.append(_disk(settings))
        elif name == "bus":
            results.append(await _bus(settings, within))
        else:
            results.append(await _database(settings, within))
    return results
