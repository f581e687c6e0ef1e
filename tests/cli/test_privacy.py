"""Patient data private by default: after a real run every folder the server made is 0750 and
every file 0640 or tighter, and what an older install left looser is tightened at start, with
a warning naming it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.cli.test_embedded import filed, indexed, run_flags, study
from tests.support import dcmtk
from tests.support.process import ServerProcess, wait_until
from tests.support.services import free_tcp_port


def loose(root: Path) -> list[str]:
    """Everything under ``root`` a member of another group could read, or its group write."""
    found = []
    for folder, directories, files in os.walk(root):
        for name in [*directories, *files, ""]:
            path = Path(folder) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o027:
                found.append(f"{mode:o} {path.relative_to(root)}")
    return sorted(set(found))


@pytest.mark.parametrize("split", ["true", "false"])
def test_what_a_run_creates_is_for_the_service_and_its_group_only(
    tmp_path: Path, split: str
) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    old = os.umask(0o022)  # as a shell usually leaves it
    try:
        server = ServerProcess(
            run_flags(data_dir, port),
            port=port,
            log_path=tmp_path / "run.log",
            environment={"STORE_SERVER_BUS__MEMORY_SPLIT": split},
        )
        with server:
            assert (
                dcmtk.storescu(port, study(tmp_path / "study", 3)).store_statuses == ["Success"] * 3
            )
            wait_until(lambda: indexed(data_dir) == 3, 30, "every instance indexed")
            assert server.terminate() == 0
    finally:
        os.umask(old)
    assert len(filed(data_dir)) == 3
    assert (data_dir / "logs" / "store-server.log").exists()
    assert loose(data_dir) == []


def test_what_an_older_install_left_open_is_tightened_at_start(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_tcp_port()
    for folder in ("", "logs", "spool", "quarantine", "accounts"):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
        (data_dir / folder).chmod(0o755)
    log = data_dir / "logs" / "store-server.log"
    log.write_text("")
    log.chmod(0o644)
    rotated = data_dir / "logs" / "store-server.log.1"
    rotated.write_text("Doe^Jane was here\n")
    rotated.chmod(0o666)
    kept = data_dir / "quarantine" / "broken.dcm"
    kept.write_bytes(b"not DICOM")
    kept.chmod(0o644)
    with ServerProcess(run_flags(data_dir, port), port=port, log_path=tmp_path / "run.log") as run:
        assert run.terminate() == 0
    assert stat.S_IMODE(rotated.stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert stat.S_IMODE((data_dir / "spool").stat().st_mode) == 0o750
    assert loose(data_dir) == []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    tightened = {
        Path(e["path"]).relative_to(data_dir).as_posix(): (e["was"], e["now"])
        for e in events
        if e["event"] == "privacy.mode_tightened"
    }
    assert tightened["quarantine/broken.dcm"] == ("644", "640")
    assert tightened["logs/store-server.log.1"] == ("666", "640")
    assert tightened["."] == ("755", "750")
    assert all(e["level"] == "warning" for e in events if e["event"] == "privacy.mode_tightened")
