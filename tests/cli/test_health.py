"""``store-server health``: the exit code container and systemd health checks rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.app import EMBEDDED
from services.health import expected_revision
from tests.support.cli import store_server
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
        assert [check["name"] for check in report["checks"]] == ["receiver", "disk", "database"]
    code, report = health(*flags)
    assert code == 1
    assert set(failed(report)) == {"receiver"}


def test_consumer_needs_its_broker_and_a_current_schema(
    tmp_path: Path, postgres_url: str, amqp_url: str, exchange: str
) -> None:
    flags = ("--role", "indexer", "--data-dir", str(tmp_path), "--database", postgres_url)
    code, report = health(*flags, "--bus", amqp_url, exchange=exchange)
    assert code == 1
    head = expected_revision()
    assert failed(report) == {
        "database": f"schema at nothing, this code needs {head} (store-server db upgrade)"
    }

    upgrade = store_server("db", "upgrade", "--database", postgres_url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert health(*flags, "--bus", amqp_url, exchange=exchange)[0] == 0

    code, report = health(*flags, "--bus", "amqp://guest:guest@127.0.0.1:1/", exchange=exchange)
    assert code == 1
    assert set(failed(report)) == {"bus"}
