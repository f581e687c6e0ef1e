"""Routers as separate processes on RabbitMQ and PostgreSQL, as `docker compose` runs them:
three routers, three modalities sending one study at once, and a router killed mid-stream."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.router.conftest import make_instance
from tests.support import dcmtk
from tests.support.process import ServerProcess, run_together, wait_until
from tests.support.services import free_tcp_port

INSTANCES = 300
SENDERS = 3


class Site:
    """A receiver and routers sharing one data directory, broker and database."""

    def __init__(self, root: Path, amqp_url: str, exchange: str, database_url: str) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_tcp_port()
        self.environment = {
            "STORE_SERVER_BUS__EXCHANGE": exchange,
            "STORE_SERVER_BUS__URL": amqp_url,
            "STORE_SERVER_DATABASE__URL": database_url,
            "STORE_SERVER_DATA_DIR": str(self.data),
            "STORE_SERVER_RECEIVER__HOST": "127.0.0.1",
            "STORE_SERVER_RECEIVER__PORT": str(self.port),
        }
        self.processes: list[ServerProcess] = []

    def start(self, role: str) -> ServerProcess:
        process = ServerProcess(
            [role],
            port=self.port if role == "receiver" else None,
            log_path=self.root / f"{role}-{len(self.processes)}.log",
            environment=self.environment,
        ).start()
        self.processes.append(process)
        return process

    def filed(self) -> list[Path]:
        accounts = self.data / "accounts"
        return sorted(accounts.rglob("*.dcm")) if accounts.exists() else []

    def spooled(self) -> list[Path]:
        return sorted((self.data / "spool").glob("*.dcm"))

    def stop(self) -> None:
        for process in self.processes:
            process.kill()


@pytest.fixture
def site(tmp_path: Path, amqp_url: str, exchange: str, postgres_url: str) -> Iterator[Site]:
    running = Site(tmp_path, amqp_url, exchange, postgres_url)
    yield running
    running.stop()


def study(folder: Path) -> list[list[Path]]:
    """One study of 300 instances in three series, split between three modalities."""
    study_uid = str(generate_uid())
    series = [str(generate_uid()) for _ in range(SENDERS)]
    parts: list[list[Path]] = [[] for _ in range(SENDERS)]
    for index in range(INSTANCES):
        part = index % SENDERS
        parts[part].append(
            make_instance(
                folder,
                study_uid=study_uid,
                series_uid=series[index // 100],
                SeriesNumber=index // 100 + 1,
                InstanceNumber=index % 100 + 1,
                RequestingPhysician="Smith^John",
            )
        )
    return parts


def send_in_parallel(site: Site, parts: list[list[Path]]) -> None:
    commands = [dcmtk.storescu_command(site.port, part) for part in parts]
    for sent in run_together(commands, env=dcmtk.ENVIRONMENT):
        assert sent.returncode == 0, sent.stdout + sent.stderr


def assert_filed_exactly_once(site: Site, parts: list[list[Path]]) -> None:
    wait_until(
        lambda: len(site.filed()) >= INSTANCES and not site.spooled(),
        within=120,
        message=f"{INSTANCES} filed (have {len(site.filed())})",
    )
    filed = site.filed()
    assert len(filed) == INSTANCES
    study_folders = {path.relative_to(site.data / "accounts").parts[:2] for path in filed}
    assert len(study_folders) == 1  # one account, one study folder
    [(account, _folder)] = study_folders
    assert account == "smith"
    sent = Counter(str(pydicom.dcmread(p).SOPInstanceUID) for part in parts for p in part)
    kept = Counter(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in filed)
    assert kept == sent  # every SOP Instance UID exactly once
    names = sorted(path.relative_to(site.data / "accounts").as_posix() for path in filed)
    assert names[0].endswith("Dicom/001_T1_axial/001-001-000001.dcm")
    assert names[-1].endswith("Dicom/003_T1_axial/003-001-000100.dcm")


def add_smith(site: Site) -> None:
    process = ServerProcess(
        ["accounts", "add", "smith", "--physician", "Smith^John"],
        port=None,
        log_path=site.root / "accounts.log",
        environment=site.environment,
    ).start()
    assert process.process is not None and process.process.wait(60) == 0, process.output


def test_three_routers_file_one_study_once(site: Site, tmp_path: Path) -> None:
    add_smith(site)
    for _ in range(3):
        site.start("router")
    site.start("receiver")
    parts = study(tmp_path / "modalities")

    send_in_parallel(site, parts)

    assert_filed_exactly_once(site, parts)


def test_router_killed_mid_stream_changes_nothing_in_the_end(site: Site, tmp_path: Path) -> None:
    add_smith(site)
    victim = site.start("router")
    for _ in range(2):
        site.start("router")
    site.start("receiver")
    parts = study(tmp_path / "modalities")

    sending = threading.Thread(target=send_in_parallel, args=(site, parts))
    sending.start()
    wait_until(lambda: len(site.filed()) >= 30, within=60, message="filing never started")
    victim.kill()  # SIGKILL: its unacked deliveries go back to the queue
    sending.join(300)

    assert_filed_exactly_once(site, parts)
