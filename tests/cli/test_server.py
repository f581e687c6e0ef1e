"""The server process as an administrator meets it: one per data directory, a clear refusal
when its port is taken, and a stop that leaves everything received filed and indexed."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

from pydicom.uid import generate_uid

from services.app import EMBEDDED
from tests.router.conftest import make_instance
from tests.support import dcmtk
from tests.support.cli import store_server
from tests.support.process import ServerProcess, wait_until
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import free_tcp_port


def run_flags(data_dir: Path, port: int) -> list[str]:
    return ["run", "--data-dir", str(data_dir), "--port", str(port), "--host", "127.0.0.1"]


def test_a_second_server_on_the_same_data_directory_refuses_at_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_tcp_port()
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "first.log"):
        index = data_dir / "index.sqlite"
        log = data_dir / "logs" / "store-server.log"
        wait_until(lambda: "index.reconciled" in log.read_text(), 30, "the first server up")
        before = {path: path.stat().st_mtime_ns for path in (index, log)}
        lines = log.read_text(encoding="utf-8").count("\n")

        second = store_server(*run_flags(data_dir, free_tcp_port()))

        assert second.returncode == 1
        [message] = second.stderr.strip().splitlines()
        assert message.startswith("store-server run: data_dir: ")
        assert "in use by another store-server (pid " in message
        assert "Traceback" not in second.stdout + second.stderr
        # Refused before it opened the index or wrote a line to the log.
        assert {path: path.stat().st_mtime_ns for path in (index, log)} == before
        assert log.read_text(encoding="utf-8").count("\n") == lines
        # The first one is untouched and still answers.
        assert dcmtk.echoscu(port).returncode == 0


def test_a_port_in_use_is_named_and_leaves_the_data_directory_free(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        refused = store_server(*run_flags(data_dir, port))
    assert refused.returncode == 1
    output = refused.stdout + refused.stderr
    assert f"receiver.port: cannot listen on 127.0.0.1:{port}: Address already in use" in output
    assert "Traceback" not in output
    # Nothing holds the data directory now: a server starts on it at once.
    port = free_tcp_port()
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "next.log"):
        assert dcmtk.echoscu(port).returncode == 0


def test_a_stop_files_and_indexes_everything_received_first(tmp_path: Path) -> None:
    """One instance per index transaction, so the indexer lags the router: at the stop its
    queue holds work, which it finishes before the process ends (the in-process bus would
    otherwise leave it to the next start's catch-up)."""
    settings = server_settings(
        tmp_path / "data", free_tcp_port(), indexer={"batch_size": 1, "max_wait_ms": 0}
    )
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    paths = [
        make_instance(tmp_path / "in", study_uid=study_uid, series_uid=series_uid)
        for _ in range(300)
    ]
    with ServerUnderTest(settings, roles=EMBEDDED) as server:
        sent = dcmtk.storescu(server.port, paths)
        assert sent.store_statuses == ["Success"] * len(paths)
    with sqlite3.connect(settings.data_dir / "index.sqlite") as index:
        [(count,)] = index.execute("SELECT count(*) FROM instances").fetchall()
    assert count == len(paths)
    assert settings.log_file is not None
    log = settings.log_file.read_text(encoding="utf-8")
    assert "drain_timeout" not in log
    assert len(list(settings.accounts_dir.rglob("*.dcm"))) == len(paths)
