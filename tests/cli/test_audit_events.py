"""Each action leaves its audit event, on both backends: the server's start and stop, an
association accepted and one refused, the instances each association brought (by patient),
a query with its keys, a C-MOVE and a C-GET, an account changed, a security alert for an
unknown AE and for a stranger's bytes; and the audit log holds the index's trail, line for
event."""

from __future__ import annotations

import json
import os
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

from tests.conftest import Backend
from tests.query.conftest import archive, stored, study
from tests.query.test_move import destination, output, study_uid
from tests.support import dcmtk
from tests.support.cli import store_server
from tests.support.process import wait_until
from tests.support.query import getscu, movescu
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import free_tcp_port

Archive = Callable[..., ServerUnderTest]
__all__ = ["archive", "output"]  # fixtures, shared with the query tests


def cli_environment(server: ServerUnderTest, backend: Backend) -> dict[str, str]:
    environment = {**os.environ, "STORE_SERVER_DATA_DIR": str(server.settings.data_dir)}
    if backend.database_url is not None:
        environment["STORE_SERVER_DATABASE__URL"] = backend.database_url
    return environment


def trail(server: ServerUnderTest, backend: Backend, *arguments: str) -> list[dict[str, Any]]:
    shown = store_server("audit", "--json", *arguments, env=cli_environment(server, backend))
    assert shown.returncode == 0, shown.stderr
    events: list[dict[str, Any]] = json.loads(shown.stdout)
    return events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == kind]


def stranger(port: int) -> None:
    """A web client at the DICOM port: bytes that are no PDU."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n")
        while connection.recv(4096):
            pass


def test_each_action_leaves_its_event(
    archive: Archive, backend: Backend, tmp_path: Path, output: Path
) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(
            **destination(port),
            receiver={"allowed_callers": ["STORESCU", "FINDSCU", "MOVESCU", "GETSCU"]},
        )
        uid = study_uid(server, "ACC-A")
        moved = movescu(
            server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"], "STORESCP"
        )
    assert moved.final == "Success", moved.output
    got = tmp_path / "got"
    got.mkdir()
    doe_study = study_uid(server, "ACC-C")
    fetched = getscu(
        server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={doe_study}"], got
    )
    assert fetched.final == "Success", fetched.output
    assert dcmtk.echoscu(server.port, calling_ae="INTRUDER").returncode != 0
    stranger(server.port)
    added = store_server(
        "accounts", "add", "Chest", "--physician", "House^Gregory",
        env=cli_environment(server, backend),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    def recorded() -> list[dict[str, Any]]:
        return trail(server, backend)

    wait_until(
        lambda: len(of(recorded(), "security_alert")) >= 2,
        message="the receiver's events never reached the trail",
    )
    events = recorded()

    started = of(events, "application_started")
    assert {role for e in started for role in e["detail"]["roles"]} >= {"receiver", "router"}
    assert all(e["detail"]["pid"] and e["detail"]["host"] for e in started)

    accepted = of(events, "association_accepted")
    assert {e["detail"]["calling_ae"] for e in accepted} >= {"STORESCU", "FINDSCU", "MOVESCU"}
    [refused] = of(events, "association_refused")
    assert refused["detail"]["calling_ae"] == "INTRUDER"
    assert "not in receiver.allowed_callers" in refused["detail"]["reason"]
    alerts = {e["detail"]["alert"]: e["detail"] for e in of(events, "security_alert")}
    assert alerts["unknown_ae"]["calling_ae"] == "INTRUDER"
    assert alerts["malformed_pdu"]["peer_address"] == "127.0.0.1"
    assert "0x47" in alerts["malformed_pdu"]["reason"]  # 'G' of GET: no PDU type

    # One transfer per association and patient: the archive's one association, two patients.
    transfers = {e["detail"]["patient_name"]: e for e in of(events, "transferred")}
    assert transfers.keys() == {"Müller^Hans", "Doe^Jane"}
    muller = transfers["Müller^Hans"]["detail"]
    assert muller["count"] == 8 and len(muller["studies"]) == 2
    assert muller["calling_ae"] == "STORESCU"
    assert transfers["Müller^Hans"]["study_instance_uid"] is None  # two studies: in detail
    doe = transfers["Doe^Jane"]
    assert doe["detail"]["count"] == 3 and doe["study_instance_uid"] is not None
    uids = [i["sop_instance_uid"] for s in muller["studies"] for i in s["instances"]]
    assert len(set(uids)) == 8

    queries = of(events, "query")
    asked = [q["detail"] for q in queries if q["detail"]["keys"].get("AccessionNumber")]
    assert asked[0]["keys"] == {"AccessionNumber": "ACC-A"} and asked[0]["matches"] == 1
    assert asked[0]["calling_ae"] == "FINDSCU" and asked[0]["level"] == "STUDY"

    exports = {e["detail"]["operation"]: e for e in of(events, "exported")}
    move = exports["C-MOVE"]
    assert move["detail"]["destination"] == "STORESCP" and move["detail"]["count"] == 6
    assert move["detail"]["calling_ae"] == "MOVESCU" and move["study_instance_uid"] == uid
    assert move["detail"]["patient_name"] == "Müller^Hans"
    get = exports["C-GET"]["detail"]
    assert get["destination"] == "GETSCU" and get["count"] == 3 and get["failed"] == 0

    [changed] = of(events, "account_changed")
    assert changed["detail"]["account"] == "Chest" and changed["detail"]["change"] == "added"
    assert changed["detail"]["physicians"] == ["House^Gregory"] and changed["detail"]["by"]

    # A patient's trail holds what was transferred and exported of them, whatever the study.
    of_doe = trail(server, backend, "--patient", "doe")
    assert {"transferred", "exported", "filed"} <= {e["event"] for e in of_doe}
    assert not any(e["detail"].get("patient_name") == "Müller^Hans" for e in of_doe)

    server.__exit__(None, None, None)
    events = recorded()
    stopped = of(events, "application_stopped")
    assert {role for e in stopped for role in e["detail"]["roles"]} >= {"receiver", "router"}
    # The audit log: the index's trail, each event once, in the index's order.
    lines = server.settings.audit_log_file.read_text(encoding="utf-8").splitlines()
    logged = [json.loads(line) for line in lines]
    in_index = trail(server, backend, "--limit", "100000")
    assert [e["id"] for e in logged] == sorted({e["id"] for e in in_index})
    assert {e["id"]: e["event"] for e in logged} == {e["id"]: e["event"] for e in in_index}
    assert oct(server.settings.audit_log_file.stat().st_mode & 0o777) == "0o640"


class Collector:
    """A syslog collector on TCP (RFC 6587 octet counting), recording each message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        held = b""
        with connection:
            while chunk := connection.recv(65536):
                held += chunk
                while b" " in held:
                    length, _, rest = held.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[: int(length)])
                    held = rest[int(length) :]

    def close(self) -> None:
        self._server.close()

    def events(self) -> list[ET.Element]:
        return [ET.fromstring(m[m.index(b"<AuditMessage") :]) for m in self.messages]


def event_id(root: ET.Element) -> str:
    found = root.find("EventIdentification/EventID")
    assert found is not None
    return found.get("csd-code", "")


def event_ids(collector: Collector) -> list[str]:
    return [event_id(root) for root in collector.events()]


def test_the_trail_reaches_a_syslog_collector_even_one_that_was_away(
    start_server: StartServer, tmp_path: Path
) -> None:
    port = free_tcp_port()
    syslog = {"host": "127.0.0.1", "port": port, "transport": "tcp"}
    server = start_server(audit={"syslog": syslog, "poll_interval": 0.2, "site": "RADIOLOGY"})
    paths = study(tmp_path, "a", 1, 2, patient="Doe^Jane")
    stored(server, paths)  # the collector is not there yet
    wait_until(lambda: server.log_events("audit.copy_behind"), message="no complaint")
    collector = Collector(port)
    try:
        wait_until(lambda: "110104" in event_ids(collector), message="no transfer arrived")
        [transfer] = [r for r in collector.events() if event_id(r) == "110104"]
        header = collector.messages[0].split(b" ", 7)
        assert header[0] == b"<85>1" and header[5] == b"IHE+RFC-3881"
        assert "110100" in event_ids(collector)  # the start came first, and was kept
        source = transfer.find("AuditSourceIdentification")
        assert source is not None and source.get("AuditEnterpriseSiteID") == "RADIOLOGY"
        sent = {
            o.get("ParticipantObjectID") for o in transfer.iter("ParticipantObjectIdentification")
        }
        assert str(pydicom.dcmread(paths[0]).StudyInstanceUID) in sent
        assert server.log_events("audit.copy_resumed")
    finally:
        collector.close()
