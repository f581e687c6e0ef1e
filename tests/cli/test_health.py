"""``store-server health``: the exit code container and systemd health checks rely on."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from services.app import EMBEDDED
from services.health import expected_revision
from tests.support.cli import store_server
from tests.support.process import ServerProcess, wait_until
from tests.support.proxy import BrokerProxy
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import free_tcp_port


def health(*arguments: str, exchange: str = "store-server") -> tuple[int, dict[str, Any]]:
    completed = store_server(
        "health", "--json", *arguments, env={"STORE_SERVER_BUS__EXCHANGE": exchange}
    )
    return completed.returncode, json.loads(completed.stdout)


def failed(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["detail"] for check in report["checks"] if not check["ok"]}


def test_embedded_server_is_healthy_while_it_runs(tmp_path: Path) -> None:
    port = free_tcp_port()
    flags = ("--data-dir", str(tmp_path), "--port", str(port), "--host", "127.0.0.1")
    settings = server_settings(tmp_path, port, receiver={"min_free_disk_mb": 1})
    with ServerUnderTest(settings, roles=EMBEDDED):
        code, report = health(*flags)
        assert code == 0, report
        assert [check["name"] for check in report["checks"]] == [
            "process",
            "receiver",
            "disk",
            "database",
        ]
    code, report = health(*flags)
    assert code == 1
    assert set(failed(report)) == {"process", "receiver"}
    assert failed(report)["process"].startswith("no heartbeat: the process is not running")


def test_a_consumer_is_healthy_only_while_its_process_works(
    tmp_path: Path, postgres_url: str, amqp_url: str, exchange: str
) -> None:
    """The router's health is its process's: no process, a process that lost its broker, a
    process that is gone are all unhealthy, whatever the broker and the database say."""
    flags = ("--role", "router", "--data-dir", str(tmp_path), "--database", postgres_url)
    code, report = health(*flags, "--bus", amqp_url, exchange=exchange)
    assert code == 1
    head = expected_revision()
    assert failed(report) == {
        "process": f"no heartbeat: the process is not running (router@{socket.gethostname()})",
        "database": f"schema at nothing, this code needs {head} (store-server db upgrade)",
    }
    assert store_server("db", "upgrade", "--database", postgres_url).returncode == 0

    with BrokerProxy("127.0.0.1", 5672) as proxy:
        router = ServerProcess(
            ["router", *flags[2:], "--bus", proxy.url()],
            port=None,
            log_path=tmp_path / "router.log",
            environment={"STORE_SERVER_BUS__EXCHANGE": exchange},
        ).start()
        try:
            wait_until(lambda: health(*flags, "--bus", amqp_url, exchange=exchange)[0] == 0, 60)
            proxy.cut()  # the router's broker connection is gone; the broker itself is fine
            wait_until(
                lambda: (
                    "broker connection lost"
                    in failed(health(*flags, exchange=exchange)[1]).get("process", "")
                ),
                30,
                "the router reporting its lost broker",
            )
            proxy.restore()
            wait_until(lambda: health(*flags, exchange=exchange)[0] == 0, 60, "reconnected")
            router.kill()  # SIGKILL: its last heartbeat stays behind
            code, report = health(*flags, exchange=exchange)
            assert code == 1
            assert failed(report)["process"].startswith(f"process {router.pid} is gone")
        finally:
            router.kill()

    code, report = health(*flags, "--bus", "amqp://guest:guest@127.0.0.1:1/", exchange=exchange)
    assert code == 1
    assert {"process", "bus"} <= set(failed(report))
