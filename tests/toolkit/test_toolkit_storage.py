"""``services.app.storage``: the store server started from a script, as a site would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from shared.dicom.net import echo, send
from tests.support.process import wait_until
from tests.support.services import free_tcp_port, sample, wait_for_port

SCRIPT = """
import sys
from pathlib import Path
from services.app import storage
from services.settings import load_settings

if __name__ == "__main__":
    settings = load_settings(None, {
        "data_dir": Path(sys.argv[1]),
        "receiver": {"host": "127.0.0.1", "port": int(sys.argv[2]), "ae_title": "SITE_ARCHIVE"},
    })
    sys.exit(storage(settings))
"""


def test_storage_runs_the_server_until_sigterm(tmp_path: Path) -> None:
    port = free_tcp_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, within=30)
        echoed = echo("127.0.0.1", port, called_aet="SITE_ARCHIVE")
        sent = send("127.0.0.1", port, [sample("MR_small.dcm")], called_aet="SITE_ARCHIVE")
        wait_until(lambda: any((tmp_path / "accounts").rglob("*.dcm")), message="never filed")
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        server.kill()
    assert echoed.ok
    assert sent.failed == 0 and sent.sent == 1
    [filed] = (tmp_path / "accounts").rglob("*.dcm")  # received, then filed by the router
    assert filed.relative_to(tmp_path / "accounts").parts[0] == "Unknown"
    assert (tmp_path / "logs" / "store-server.log").is_file()
    assert (tmp_path / "index.sqlite").is_file()
