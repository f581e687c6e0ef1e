"""PostgreSQL going away while instances arrive: the router waits for it, then files them
all, without spending delivery attempts or dead-lettering anything."""

from __future__ import annotations

import time
from pathlib import Path

from shared.dicom.net import send
from tests.conftest import Backend
from tests.router.conftest import StartServer, make_instance, wait_for_filed
from tests.support.proxy import BrokerProxy


def test_router_rides_out_a_database_outage(
    database_proxy: tuple[BrokerProxy, str],  # set up first, so torn down after the server
    start_server: StartServer,
    tmp_path: Path,
    study_uid: str,
) -> None:
    proxy, url = database_proxy
    server = start_server(
        Backend("embedded", "memory://", "store-server", url),
        roles=("router", "receiver"),
        bus={"max_attempts": 2},
    )
    proxy.cut()  # the database restarts: connections drop, new ones are refused
    instances = [
        make_instance(tmp_path, study_uid=study_uid, InstanceNumber=n) for n in range(1, 6)
    ]
    summary = send("127.0.0.1", server.port, instances, called_aet="STORE_SERVER")
    assert summary.failed == 0  # the receiver does not need the database
    time.sleep(3)  # longer than two attempts' backoff would allow
    assert len(server.spool) == 5
    proxy.restore()

    filed = wait_for_filed(server, 5)

    assert len(filed) == 5
    assert server.running is not None
    assert server.call(server.running.bus.dead_letters("router")) == []
    assert server.log_events("retry.waiting")
