"""PostgreSQL going away while a study completes: the scan-sheet service waits for it, then
writes the sheet, without spending delivery attempts or dead-lettering the study."""

from __future__ import annotations

import time
from pathlib import Path

from pydicom.uid import generate_uid

from shared.messages import StudyComplete
from tests.conftest import Backend
from tests.scansheet.conftest import make_study, send_all, sheet_json_path
from tests.support.process import wait_until
from tests.support.proxy import BrokerProxy
from tests.support.server import StartServer


def test_the_scan_sheet_rides_out_a_database_outage(
    # The proxy first, so that it is torn down after the server: a sheet still being written
    # when the server stops must reach the database, not retry a closed port for a minute.
    database_proxy: tuple[BrokerProxy, str],
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    proxy, url = database_proxy
    server = start_server(
        Backend("embedded", "memory://", "store-server", url),
        bus={"max_attempts": 2, "retry_backoff": 0.1},
        # Announced by hand below, not by the monitor.
        scansheet={"stable_age": 3600, "poll_interval": 60, "thumbnail_workers": 1},
    )
    study_uid = str(generate_uid())
    send_all(server, make_study(tmp_path / "in", study_uid, series=2, per_series=1))
    wait_until(lambda: server.log_events("index.batch_written"), message="indexed")
    proxy.cut()  # the database restarts: connections drop, new ones are refused
    assert server.running is not None
    bus = server.running.bus
    server.call(bus.publish(StudyComplete(study_instance_uid=study_uid, reason="manual")))
    time.sleep(2)  # far longer than two attempts' backoff would allow
    assert sheet_json_path(server) is None
    proxy.restore()

    wait_until(lambda: sheet_json_path(server) is not None, 60, "the sheet, after the outage")
    assert server.call(bus.dead_letters("scansheet")) == []
    assert server.log_events("retry.waiting")
