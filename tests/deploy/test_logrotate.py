"""The logrotate file: a running server keeps logging into the new file after a rotation."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import dcmtk
from tests.support.deploy import ROOT
from tests.support.process import ServerProcess, run, wait_until
from tests.support.services import free_tcp_port, require_tool

INSTALLED_LOG = "/var/log/store-server/store-server.log"


def test_a_rotated_log_is_reopened_by_the_running_server(tmp_path: Path) -> None:
    logrotate = require_tool("logrotate")
    data = tmp_path / "data"
    log = data / "logs" / "store-server.log"
    # The installed file, pointed at this test's log and owner.
    config = (ROOT / "deploy" / "logrotate" / "store-server").read_text()
    assert INSTALLED_LOG in config
    owner = f"{os.getuid()} {os.getgid()}"
    config = config.replace(INSTALLED_LOG, str(log))
    config = config.replace("store-server store-server", owner)
    (tmp_path / "logrotate.conf").write_text(config)
    port = free_tcp_port()
    flags = ["--data-dir", str(data), "--port", str(port), "--host", "127.0.0.1"]
    with ServerProcess(["run", *flags], port=port, log_path=tmp_path / "stdout.log"):
        wait_until(lambda: log.exists() and log.stat().st_size > 0, 30, "the log written")
        rotated = run(
            [
                logrotate,
                "--force",
                "--state",
                str(tmp_path / "state"),
                str(tmp_path / "logrotate.conf"),
            ]
        )
        assert rotated.returncode == 0, rotated.stderr
        [old] = list(log.parent.glob("store-server.log-*"))
        assert "ROTATE_TEST" not in old.read_text()

        assert dcmtk.echoscu(port, calling_ae="ROTATE_TEST").returncode == 0

        # The association is logged in the new file, not lost in the moved one.
        wait_until(lambda: log.exists() and "ROTATE_TEST" in log.read_text(), 30, "new file")
        assert "ROTATE_TEST" not in old.read_text()
        assert (log.stat().st_mode & 0o777) == 0o640
