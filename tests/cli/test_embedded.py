"""``store-server run`` as two processes (the receiver, and the consumers beside it): what an
administrator sees when it runs, stops, and when either process is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

from pydicom.uid import generate_uid

from tests.router.conftest import make_instance
from tests.support import dcmtk
from tests.support.process import ServerProcess, wait_until
from tests.support.services import free_tcp_port


def run_flags(data_dir: Path, port: int) -> list[str]:
    return ["run", "--data-dir", str(data_dir), "--port", str(port), "--host", "127.0.0.1"]


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def consumers_of(server: ServerProcess) -> int:
    """The consumers' process: the one child of ``run`` that runs ``services.embedded``."""
    found: list[int] = []

    def started() -> bool:
        found[:] = [
            pid
            for pid in children(server.pid)
            if b"services.embedded" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        return len(found) == 1

    wait_until(started, 30, "the consumers' process")
    return found[0]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: ended, waiting for its parent to reap it.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def study(folder: Path, count: int) -> list[Path]:
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    return [
        make_instance(folder, study_uid=study_uid, series_uid=series_uid, instance_number=n)
        for n in range(1, count + 1)
    ]


def indexed(data_dir: Path) -> int:
    index = data_dir / "index.sqlite"
    if not index.exists():
        return 0
    with sqlite3.connect(index) as connection:
        return int(connection.execute("SELECT count(*) FROM instances").fetchone()[0])


def filed(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "accounts").rglob("*.dcm"))


def test_the_consumers_run_beside_the_receiver_and_stop_after_it(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    paths = study(tmp_path / "study", 20)
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "run.log") as run:
        consumers = consumers_of(run)
        assert dcmtk.storescu(port, paths).store_statuses == ["Success"] * 20
        wait_until(lambda: indexed(data_dir) == 20, 30, "every instance indexed")
        assert len(filed(data_dir)) == 20
        assert run.terminate() == 0
    assert gone(consumers)
    log = (data_dir / "logs" / "store-server.log").read_text()
    assert f'"consumers_pid": {consumers}' in log
    # Both processes wrote to the one log, and each stopped in order.
    assert log.count('"event": "process.stopped"') == 2


def test_one_process_when_the_split_is_turned_off(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    server = ServerProcess(
        run_flags(data_dir, port),
        port=port,
        log_path=tmp_path / "run.log",
        environment={"STORE_SERVER_BUS__MEMORY_SPLIT": "false"},
    )
    with server:
        assert dcmtk.storescu(port, study(tmp_path / "study", 3)).store_statuses == ["Success"] * 3
        wait_until(lambda: indexed(data_dir) == 3, 30, "every instance indexed")
        assert children(server.pid) == [] or all(
            b"services.embedded" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            for pid in children(server.pid)
        )
        assert server.terminate() == 0


def test_consumers_killed_stop_the_server_with_an_error_and_lose_nothing(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    first = study(tmp_path / "first", 200)
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "run.log") as run:
        consumers = consumers_of(run)
        assert dcmtk.storescu(port, first).store_statuses == ["Success"] * 200
        os.kill(consumers, signal.SIGKILL)  # the last batches are still being filed
        assert indexed(data_dir) < 200
        assert run.process is not None
        assert run.process.wait(30) == 1
    log = (data_dir / "logs" / "store-server.log").read_text()
    assert '"event": "process.consumers_ended"' in log

    # Started again, the server files and indexes what it answered Success for, then the rest.
    second = study(tmp_path / "second", 5)
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "again.log"):
        assert dcmtk.storescu(port, second).store_statuses == ["Success"] * 5
        wait_until(lambda: indexed(data_dir) == 205, 60, "all 205 indexed")
    assert len(filed(data_dir)) == 205


def test_receiver_killed_the_consumers_end_and_the_next_start_files_the_rest(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    paths = study(tmp_path / "study", 200)
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "run.log") as run:
        consumers = consumers_of(run)
        assert dcmtk.storescu(port, paths).store_statuses == ["Success"] * 200
        run.kill()  # SIGKILL: the receiver's process crashes while the last are filed
        assert indexed(data_dir) < 200
        wait_until(lambda: gone(consumers), 15, "the consumers' process ending on its own")
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "again.log"):
        wait_until(lambda: indexed(data_dir) == 200, 60, "every instance filed and indexed")
    assert len(filed(data_dir)) == 200
    wait_until(lambda: not list((data_dir / "spool").glob("*.dcm")), 10, "the spool emptied")


def test_consumers_that_cannot_start_stop_the_server_with_their_reason(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    server = ServerProcess(
        [*run_flags(data_dir, port), "--database", "postgresql://nobody@127.0.0.1:1/none"],
        port=None,
        log_path=tmp_path / "run.log",
        environment={"STORE_SERVER_DATABASE__CONNECT_TIMEOUT": "1"},
    )
    with server:
        assert server.process is not None
        assert server.process.wait(60) == 1
    lines = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    failures = [line for line in lines if line["event"] == "process.start_failed"]
    assert any("database.url: cannot reach the database" in line["error"] for line in failures)
    assert {line["logger"] for line in failures} == {"services.embedded"}
    assert any(line["event"] == "process.consumers_failed" for line in lines)
    assert dcmtk.echoscu(port).returncode != 0  # it never listened


def test_sigterm_while_the_consumers_start_stops_without_listening(tmp_path: Path) -> None:
    """The consumers' process is still opening the index (here, a database that accepts the
    connection and never answers): the receiver waits for it without a deadline, and a SIGTERM
    then stops both, the port never opened."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    data_dir, port = tmp_path / "data", free_tcp_port()
    database = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
    server = ServerProcess(
        [*run_flags(data_dir, port), "--database", database],
        port=None,
        log_path=tmp_path / "run.log",
        environment={"STORE_SERVER_DATABASE__CONNECT_TIMEOUT": "8"},
    )
    try:
        with server:
            consumers = consumers_of(server)
            time.sleep(1)
            assert dcmtk.echoscu(port).returncode != 0  # not listening while they start
            started = time.monotonic()
            assert server.terminate(within=30) in (0, 1)
            assert time.monotonic() - started < 20
            assert gone(consumers)
    finally:
        silent.close()
    assert '"event": "process.stopped"' in server.output
    assert dcmtk.echoscu(port).returncode != 0
