"""A study completes after its stable age: one sheet per quiet period, rewritten when late
instances arrive, and exactly one across a restart during the quiet period."""

from __future__ import annotations

import time
from pathlib import Path

from pydicom.uid import generate_uid

from services.app import EMBEDDED
from shared.db.audit import Action, AuditEvent, history
from tests.conftest import Backend
from tests.scansheet.conftest import (
    FAST,
    make_study,
    send_all,
    wait_for_filed,
    wait_for_sheet,
    written,
)
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, StartServer, server_settings
from tests.support.services import free_tcp_port


def test_one_sheet_after_the_stable_age_and_a_late_instance_rewrites_it(
    start_server: StartServer, backend: Backend, tmp_path: Path
) -> None:
    server = start_server(backend, scansheet=FAST)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=3, per_series=2)
    send_all(server, paths)
    sent_at = time.monotonic()
    sheet = wait_for_sheet(server, instances="6")
    assert time.monotonic() - sent_at >= FAST["stable_age"] - 0.2  # not before the quiet period
    assert [(row["number"], row["images"]) for row in sheet["series"]] == [
        ("1", 2),
        ("2", 2),
        ("3", 2),
    ]
    assert sheet["study"]["series"] == "3"
    assert all(row["thumbnail"]["pictured"] for row in sheet["series"])
    assert sheet["series"][1]["parameters"]["TR"] == "700 ms"
    folder = Path(server.settings.accounts_dir / sheet["study_folder"])
    assert {p.name for p in folder.iterdir()} == {
        "Dicom",
        "scansheet.html",
        "scansheet.pdf",
        "scansheet.png",
        "scansheet.json",
    }
    assert b"T2 axial" in (folder / "scansheet.html").read_bytes()
    time.sleep(FAST["stable_age"] * 2)  # a quiet study is announced once, not at every poll
    assert len(written(server)) == 1

    late = make_study(tmp_path / "late", study_uid, series=1, per_series=1, first_number=4)
    send_all(server, late)
    sheet = wait_for_sheet(server, instances="7")
    assert [row["number"] for row in sheet["series"]] == ["1", "2", "3", "4"]
    time.sleep(FAST["stable_age"] * 2)
    assert len(written(server)) == 2
    assert len(server.log_events("monitor.announced")) == 2
    assert len(server.call(sheet_audit(server, str(study_uid)))) == 2


async def sheet_audit(server: ServerUnderTest, study_uid: str) -> list[AuditEvent]:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        return await history(connection, study_instance_uid=study_uid, action=Action.SHEET_WRITTEN)


def test_a_restart_during_the_quiet_period_still_gives_exactly_one_sheet(
    tmp_path: Path, backend: Backend
) -> None:
    settings = server_settings(
        tmp_path / "data",
        free_tcp_port(),
        bus_url=backend.bus_url,
        exchange=backend.exchange,
        database_url=backend.database_url,
        scansheet={**FAST, "stable_age": 3.0},
    )
    study_uid = generate_uid()
    with ServerUnderTest(settings, roles=EMBEDDED) as first:
        send_all(first, make_study(tmp_path / "in", study_uid, series=3, per_series=1))
        wait_for_filed(first, 3)
        wait_until(lambda: indexed(first) >= 3, 10, "3 instances indexed")
        assert written(first) == []
    # Stopped inside the 3 s quiet period: only the index remembers the study.
    with ServerUnderTest(settings, roles=EMBEDDED) as second:
        sheet = wait_for_sheet(second, instances="3")
        assert len(sheet["series"]) == 3
        time.sleep(3.5)
        assert len(written(second)) == 1


def indexed(server: ServerUnderTest) -> int:
    return sum(int(event["size"]) for event in server.log_events("index.batch_written"))
