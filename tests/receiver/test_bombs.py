"""A deflate bomb from a sender: about 1 MB on the wire, hundreds of MB once inflated. The
receiver walks it as it inflates; past receiver.max_inflated_mb it refuses it with the reason,
and below that it is received, filed and indexed without any process holding it inflated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.support import dcmtk
from tests.support.bombs import header, padded_file
from tests.support.cli import store_server
from tests.support.process import ServerProcess, wait_until
from tests.support.server import StartServer
from tests.support.services import free_tcp_port

pytestmark = pytest.mark.dcmtk

INFLATED = 512 * 2**20


def peak_rss_mb(pid: int) -> int:
    """The most resident memory the process has held (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bomb")
    made = padded_file(folder / "bomb.dcm", header(), INFLATED, deflated=True)
    assert made.stat().st_size < 2**20
    return made


def test_past_the_inflation_limit_the_sender_is_told_why_and_nothing_is_filed(
    start_server: StartServer, bomb: Path
) -> None:
    server = start_server(receiver={"max_inflated_mb": 64})
    sent = dcmtk.storescu(server.port, [bomb], options=["-xd"])  # sent deflated, as it is
    assert sent.store_statuses == ["Error: CannotUnderstand"], sent.output  # 0xC000
    [reason] = server.settings.quarantine_dir.glob("*.reason.json")
    assert f"inflates beyond {64 * 2**20} bytes" in json.loads(reason.read_text())["reason"]
    assert not list(server.settings.accounts_dir.rglob("*.dcm"))


def test_within_the_limit_it_is_filed_and_indexed_in_bounded_memory(
    tmp_path: Path, bomb: Path
) -> None:
    port = free_tcp_port()
    data = tmp_path / "data"
    flags = ["--data-dir", str(data), "--port", str(port), "--host", "127.0.0.1"]
    with ServerProcess(["run", *flags], port=port, log_path=tmp_path / "server.log") as server:
        baseline = peak_rss_mb(server.pid)
        sent = dcmtk.storescu(port, [bomb], options=["-xd"])
        assert sent.returncode == 0 and sent.store_statuses == ["Success"], sent.output

        def indexed() -> bool:
            listed = store_server("studies", "--json", "--data-dir", str(data))
            return bool(listed.stdout.strip()) and len(json.loads(listed.stdout)) == 1

        wait_until(indexed, 120, "the bomb indexed")
        [filed] = (data / "accounts").rglob("*.dcm")
        # Kept as sent: deflated, never inflated on disk either.
        assert read_file_meta_info(filed).TransferSyntaxUID == DeflatedExplicitVRLittleEndian
        assert filed.stat().st_size < 2**20
        # Receiving, checking, filing and indexing it together grew the server by far less
        # than the data set inflates to.
        assert peak_rss_mb(server.pid) - baseline < 128, (baseline, peak_rss_mb(server.pid))
