"""The log as an administrator reads it: what a library says about a modality's data is
debug detail naming the instance, and a port probe is not a warning."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
import structlog
from pydicom.uid import generate_uid

from services.app import EMBEDDED
from shared.log import configure_logging, get_logger
from tests.router.conftest import make_instance, wait_for_filed
from tests.scansheet.conftest import wait_for_sheet
from tests.support import dcmtk
from tests.support.process import ServerProcess, wait_until
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import free_tcp_port

# Values pydicom finds odd: a date that is not one, a number that is not one.
ODD: dict[int | None, tuple[str, bytes]] = {
    0x00080020: ("DA", b"2026-13-45"),
    0x00200013: ("IS", b"1.5e3x"),
}


def lines(server: ServerUnderTest) -> list[dict[str, Any]]:
    assert server.settings.log_file is not None
    text = server.settings.log_file.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def odd_instance(folder: Path) -> Path:
    """Made before the server logs anything: only what the server says is read back."""
    return make_instance(folder, study_uid=str(generate_uid()), raw=ODD)


def send_odd_instance(server: ServerUnderTest, path: Path) -> str:
    assert dcmtk.storescu(server.port, [path]).store_statuses == ["Success"]
    wait_for_filed(server, 1)
    wait_until(lambda: server.log_events("index.batch_written"), message="indexed")
    return path.stem  # make_instance names the file after its SOP Instance UID


def test_library_remarks_on_odd_values_are_not_warnings(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "data", free_tcp_port())
    path = odd_instance(tmp_path)
    with ServerUnderTest(settings, roles=EMBEDDED) as server:
        send_odd_instance(server, path)
    noisy = [line for line in lines(server) if line["logger"].startswith("pydicom")]
    assert noisy == []
    assert [line for line in lines(server) if line["level"] in ("warning", "error")] == []


def test_at_debug_level_each_library_remark_names_its_instance(tmp_path: Path) -> None:
    """Filing and indexing read values from the bytes and say nothing of odd ones; the scan
    sheet reads them through pydicom, whose remarks name the study they concern."""
    settings = server_settings(
        tmp_path / "data",
        free_tcp_port(),
        log={"level": "debug"},
        scansheet={"stable_age": 0.5, "poll_interval": 0.2},
    )
    path = odd_instance(tmp_path)
    with ServerUnderTest(settings, roles=EMBEDDED) as server:
        sop_instance_uid = send_odd_instance(server, path)
        study_uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        wait_for_sheet(server)
    remarks = [line for line in lines(server) if line["logger"].startswith("pydicom")]
    assert remarks, "pydicom said nothing of the odd values"
    assert all(line["level"] == "debug" for line in remarks)
    assert all(
        line.get("sop_instance_uid") == sop_instance_uid
        or line.get("study_instance_uid") == study_uid
        for line in remarks
    ), remarks


def test_a_port_probe_and_a_stranger_speaking_http_are_not_warnings(tmp_path: Path) -> None:
    settings = server_settings(
        tmp_path / "data", free_tcp_port(), receiver={"acse_timeout": 1, "network_timeout": 2}
    )
    with ServerUnderTest(settings, roles=EMBEDDED) as server:
        socket.create_connection(("127.0.0.1", server.port)).close()
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            time.sleep(2.5)  # past the ACSE timeout
        with socket.create_connection(("127.0.0.1", server.port)) as stranger:
            stranger.sendall(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n")
            time.sleep(0.5)
        assert dcmtk.echoscu(server.port).returncode == 0  # and the port still answers
    assert idle.fileno() == -1
    assert [line for line in lines(server) if line["level"] in ("warning", "error")] == []


def test_in_a_container_the_log_is_json_lines_on_stdout_and_no_file(tmp_path: Path) -> None:
    """``log.to_file = false``, as the image sets it: the engine collects stdout."""
    port = free_tcp_port()
    flags = ["--data-dir", str(tmp_path / "data"), "--port", str(port), "--host", "127.0.0.1"]
    stdout = tmp_path / "stdout"
    server = ServerProcess(
        ["run", *flags],
        port=port,
        log_path=stdout,
        environment={"STORE_SERVER_LOG__TO_FILE": "false"},
    )
    with server:
        assert dcmtk.echoscu(port, calling_ae="CONTAINER_TEST").returncode == 0
        assert server.terminate() == 0
    records = [json.loads(line) for line in stdout.read_text().splitlines()]
    assert any(record.get("calling_ae") == "CONTAINER_TEST" for record in records)
    # No log file; the audit trail's own log is kept (the data volume's, in a container).
    logs = tmp_path / "data" / "logs"
    assert [p.name for p in logs.iterdir() if not p.name.startswith("audit.log")] == []


def test_a_line_is_rendered_once_for_the_file_and_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []
    original = structlog.stdlib.ProcessorFormatter.format

    def counting(self: structlog.stdlib.ProcessorFormatter, record: logging.LogRecord) -> str:
        text = original(self, record)
        rendered.append(text)
        return text

    monkeypatch.setattr(structlog.stdlib.ProcessorFormatter, "format", counting)
    stdout = io.StringIO()
    configure_logging(tmp_path / "server.log", stream=stdout)
    try:
        get_logger("tests.log").info("instance.received", sop_instance_uid="1.2.3")
        get_logger("tests.log").info("instance.received", sop_instance_uid="1.2.4")
    finally:
        configure_logging(None, stream=io.StringIO())
    written = (tmp_path / "server.log").read_text().splitlines()
    assert stdout.getvalue().splitlines() == written
    assert [json.loads(line)["sop_instance_uid"] for line in written] == ["1.2.3", "1.2.4"]
    assert len(rendered) == 2
