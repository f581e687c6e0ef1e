"""The compose topology without a container engine: each role as its own process, started
with exactly the command and environment ``docker-compose.yml`` gives it (read from the
rendered file), against the real RabbitMQ and PostgreSQL of this machine.

What the engine would provide is provided here, and only that: the ``data`` volume is a
folder, the receiver listens on the host port compose publishes, scaled routers (each its
own container, so its own host name) are told apart by ``STORE_SERVER_INSTANCE``, and the
test's own exchange keeps it apart from other tests on the same broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.support import dcmtk
from tests.support.cli import store_server
from tests.support.deploy import render_compose
from tests.support.filing import mr_study
from tests.support.process import ServerProcess, wait_until
from tests.support.proxy import BrokerProxy
from tests.support.query import findscu
from tests.support.services import drop_role, free_tcp_port, unique_name

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow]

SERIES, PER_SERIES = 2, 3


class Topology:
    """The rendered compose services, started as processes."""

    def __init__(self, services: dict[str, Any], data: Path, exchange: str, logs: Path) -> None:
        self.services = services
        self.data = data
        self.exchange = exchange
        self.logs = logs
        self.port = int(services["receiver"]["ports"][0]["published"])
        self.processes: dict[str, ServerProcess] = {}

    def environment(self, service: str, instance: str = "") -> dict[str, str]:
        given = {name: str(value) for name, value in self.services[service]["environment"].items()}
        engine = {
            "STORE_SERVER_DATA_DIR": str(self.data),
            "STORE_SERVER_BUS__EXCHANGE": self.exchange,
        }
        if service == "receiver":
            engine["STORE_SERVER_RECEIVER__PORT"] = str(self.port)
        if instance:
            engine["STORE_SERVER_INSTANCE"] = instance
        return {**given, **engine}

    def command(self, service: str) -> list[str]:
        command: list[str] = self.services[service]["command"]
        assert command[0] == "store-server"  # the image's entry point, on its PATH
        return command[1:]

    def run_once(self, service: str) -> None:
        completed = store_server(*self.command(service), env=self.environment(service))
        assert completed.returncode == 0, completed.stdout + completed.stderr

    def start(self, service: str, instance: str = "") -> ServerProcess:
        name = f"{service}.{instance}" if instance else service
        process = ServerProcess(
            self.command(service),
            port=self.port if service == "receiver" else None,
            log_path=self.logs / f"{name}.log",
            environment=self.environment(service, instance),
        ).start()
        self.processes[name] = process
        return process

    def health(self, name: str) -> tuple[int, dict[str, str]]:
        """What the container's health check says: ``store-server health`` in its
        environment; the exit code and each failed check's detail."""
        service, _, instance = name.partition(".")
        completed = store_server("health", "--json", env=self.environment(service, instance))
        report = json.loads(completed.stdout)
        failed = {check["name"]: check["detail"] for check in report["checks"] if not check["ok"]}
        return completed.returncode, failed

    def healthy(self, name: str) -> bool:
        return self.health(name)[0] == 0

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()


@pytest.fixture
def topology(
    tmp_path: Path, postgres_url: str, exchange: str
) -> Iterator[tuple[Topology, BrokerProxy]]:
    index = urlsplit(postgres_url)
    query_role = unique_name("query").lower()  # roles are the cluster's: one per test
    # The roles reach the broker through a proxy the test can cut, as a network would.
    with BrokerProxy("127.0.0.1", 5672) as broker:
        variables = {
            "RABBITMQ_HOST": "127.0.0.1",
            "RABBITMQ_PORT": str(broker.port),
            "RABBITMQ_USER": "guest",
            "RABBITMQ_PASSWORD": "guest",
            "POSTGRES_HOST": index.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(index.port or 5432),
            "POSTGRES_USER": index.username or "postgres",
            "POSTGRES_PASSWORD": "unused-with-trust-auth",
            "POSTGRES_QUERY_USER": query_role,
            "POSTGRES_QUERY_PASSWORD": "unused-with-trust-auth",
            "POSTGRES_DB": index.path.lstrip("/"),
            "DICOM_PORT": str(free_tcp_port()),
            "SCANSHEET_STABLE_AGE": "2",
        }
        rendered = render_compose(tmp_path / ".env", variables)
        data = tmp_path / "volume-data"
        data.mkdir()
        running = Topology(rendered["services"], data, exchange, tmp_path)
        try:
            yield running, broker
        finally:
            running.stop()
            asyncio.run(drop_role(postgres_url, query_role))


def test_each_role_as_compose_starts_it_files_indexes_and_sheets_a_study(
    topology: tuple[Topology, BrokerProxy], tmp_path: Path
) -> None:
    site, broker = topology
    site.run_once("migrate")  # what the others wait for: service_completed_successfully
    site.start("receiver")
    site.start("router", "1")
    site.start("router", "2")
    site.start("indexer")
    site.start("scansheet")
    names = ["receiver", "router.1", "router.2", "indexer", "scansheet"]
    for name in names:
        wait_until(lambda name=name: site.healthy(name), 60, f"{name} healthy")

    study = mr_study(SERIES, PER_SERIES)
    modality = tmp_path / "modality"
    modality.mkdir()
    paths = []
    for number, ds in enumerate(study):
        path = modality / f"{number}.dcm"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    sent = dcmtk.storescu(site.port, paths, calling_ae="MR_ROOM2")
    assert sent.returncode == 0, sent.output

    # Filed: into the physician's Guest folder (no account answers to Smith^John here).
    accounts = site.data / "accounts"
    wait_until(lambda: len(list(accounts.rglob("*.dcm"))) == len(study), 60, "filed")
    filed = sorted(p.relative_to(accounts).as_posix() for p in accounts.rglob("*.dcm"))
    folder = "Guest/Smith_John/Doe_Jane_20261120_ACC42"
    assert filed[0] == f"{folder}/Dicom/001_T1_axial/001-001-000001.dcm"
    assert filed[-1] == f"{folder}/Dicom/002_T2_axial/002-001-000003.dcm"
    study_folder = accounts / folder

    # Indexed: the study as `store-server studies` lists it from PostgreSQL.
    def listed() -> list[dict[str, Any]]:
        found = store_server("studies", "--json", env=site.environment("indexer"))
        rows: list[dict[str, Any]] = json.loads(found.stdout)
        return rows

    wait_until(lambda: [row["instance_count"] for row in listed()] == [len(study)], 60, "indexed")
    assert listed()[0]["study_instance_uid"] == study[0].StudyInstanceUID

    # Found by a workstation through the receiver, which reads the index as its query role.
    found = findscu(site.port, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "AccessionNumber"])
    assert found.final == "Success", found.output
    assert found.values("StudyInstanceUID") == [study[0].StudyInstanceUID]

    # Its scan sheet, once the study has been quiet for its stable age.
    sheet = study_folder / "scansheet.html"
    wait_until(sheet.exists, 90, "scan sheet written")
    assert b"T2 axial" in sheet.read_bytes()

    # Every role's health is its own process's: the broker connection gone, then back.
    broker.cut()
    for name in names:
        wait_until(
            lambda name=name: "broker connection lost" in site.health(name)[1].get("process", ""),
            30,
            f"{name} unhealthy without its broker connection",
        )
    broker.restore()
    for name in names:
        wait_until(lambda name=name: site.healthy(name), 90, f"{name} healthy again")

    # A stopped process is unhealthy, whatever the others and the services say.
    assert site.processes["router.1"].terminate() == 0
    code, failed = site.health("router.1")
    assert code == 1
    assert failed["process"].startswith("no heartbeat: the process is not running")
    assert site.healthy("router.2")
    indexer = site.processes["indexer"]
    indexer.kill()
    code, failed = site.health("indexer")
    assert code == 1
    assert failed["process"].startswith(f"process {indexer.pid} is gone")
