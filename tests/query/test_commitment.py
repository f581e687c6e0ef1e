"""Storage commitment as a modality asks for it (pynetdicom's SCU): the report on the same
association, or on a new one to the modality's address; only what is filed and indexed is
committed; a request outlives a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from services.receiver.commitment import WELL_KNOWN_INSTANCE
from tests.query.conftest import stored, study
from tests.support.query import findscu
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import free_tcp_port

Archive = Callable[..., ServerUnderTest]
QUICK = {"commitment": {"wait": 3, "poll_interval": 0.2, "retry": 0.5}}


class Reports:
    """N-EVENT-REPORTs received, each (event type, event information)."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Dataset]] = []
        self.arrived = threading.Event()

    def handle(self, event: evt.Event) -> tuple[int, None]:
        self.received.append((int(event.event_type or 0), event.event_information))
        self.arrived.set()
        return 0x0000, None


def references(server: ServerUnderTest, accession: str) -> list[tuple[str, str]]:
    keys = [
        "QueryRetrieveLevel=IMAGE",
        f"AccessionNumber={accession}",
        "SOPClassUID",
        "SOPInstanceUID",
    ]
    found = findscu(server.port, keys)
    return [(str(m.SOPClassUID), str(m.SOPInstanceUID)) for m in found.matches]


def request(transaction: str, refs: list[tuple[str, str]]) -> Dataset:
    information = Dataset()
    information.TransactionUID = transaction
    items = []
    for sop_class, instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, instance
        items.append(item)
    information.ReferencedSOPSequence = items
    return information


def ask(port: int, information: Dataset, reports: Reports | None, *, stay: float = 0) -> int:
    """N-ACTION on a fresh association; stay up to ``stay`` seconds for the report on it."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(StorageCommitmentPushModel)
    handlers: list[Any] = [(evt.EVT_N_EVENT_REPORT, reports.handle)] if reports else []
    assoc = ae.associate("127.0.0.1", port, ae_title="STORE_SERVER", evt_handlers=handlers)
    assert assoc.is_established
    try:
        status, _ = assoc.send_n_action(
            information, 1, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE
        )
        if reports is not None and stay:
            reports.arrived.wait(stay)
    finally:
        assoc.release()
    return int(status.Status)


@contextmanager
def modality_listening(reports: Reports) -> Iterator[int]:
    """The modality's own AE, taking reports on associations the server opens."""
    ae = AE(ae_title="MODALITY")
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    port = free_tcp_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)]
    )
    assert server is not None
    try:
        yield port
    finally:
        server.shutdown()


def committed(information: Dataset) -> list[str]:
    return sorted(
        str(i.ReferencedSOPInstanceUID) for i in information.get("ReferencedSOPSequence", [])
    )


def failed(information: Dataset) -> dict[str, int]:
    return {
        str(i.ReferencedSOPInstanceUID): int(i.FailureReason)
        for i in information.get("FailedSOPSequence", [])
    }


def test_the_report_comes_on_the_same_association_with_what_is_safe(archive: Archive) -> None:
    server = archive(receiver=QUICK)
    refs = references(server, "ACC-C")
    assert len(refs) == 3
    unknown = (refs[0][0], generate_uid())
    wrong_class = ("1.2.840.10008.5.1.4.1.1.2", refs[1][1])  # CT named for an MR instance
    transaction = generate_uid()
    reports = Reports()
    status = ask(
        server.port,
        request(transaction, [refs[0], refs[2], unknown, wrong_class]),
        reports,
        stay=15,
    )
    assert status == 0x0000
    [(event_type, information)] = reports.received
    assert event_type == 2  # some failed
    assert information.TransactionUID == transaction
    assert committed(information) == sorted([refs[0][1], refs[2][1]])
    assert failed(information) == {unknown[1]: 0x0112, wrong_class[1]: 0x0119}
    assert information.RetrieveAETitle == "STORE_SERVER"
    done = server.log_events("commitment.reported")[0]
    assert (done["committed"], done["failed"], done["on"]) == (2, 2, "the same association")
    assert not list(server.settings.paths.commitments.glob("*.json"))  # reported: forgotten


def test_a_modality_that_left_gets_the_report_at_its_address(archive: Archive) -> None:
    reports = Reports()
    with modality_listening(reports) as port:
        server = archive(
            receiver=QUICK, destinations={"MODALITY": {"host": "127.0.0.1", "port": port}}
        )
        refs = references(server, "ACC-A")
        transaction = generate_uid()
        assert ask(server.port, request(transaction, refs), None) == 0x0000
        assert reports.arrived.wait(20), server.log_events("commitment.report_failed")
    [(event_type, information)] = reports.received
    assert event_type == 1  # all committed
    assert committed(information) == sorted(uid for _, uid in refs)
    assert server.log_events("commitment.reported")[0]["on"] == "a new association"


def test_instances_still_on_their_way_are_waited_for(archive: Archive, tmp_path: Path) -> None:
    server = archive(receiver={"commitment": {"wait": 30, "poll_interval": 0.2}})
    paths = study(tmp_path, "late", 1, 2, patient="Late^Arrival", AccessionNumber="ACC-L")
    refs = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in map(pydicom.dcmread, paths)]
    reports = Reports()
    outcome: dict[str, Any] = {}

    def modality() -> None:
        outcome["status"] = ask(server.port, request(generate_uid(), refs), reports, stay=30)

    asking = threading.Thread(target=modality)
    asking.start()
    time.sleep(1)  # the request is in; the images come after it
    stored(server, paths)
    asking.join(40)
    assert outcome["status"] == 0x0000
    [(event_type, information)] = reports.received
    assert event_type == 1 and committed(information) == sorted(uid for _, uid in refs)


def test_a_request_outlives_a_restart(tmp_path: Path, free_port: int) -> None:
    reports = Reports()
    with modality_listening(reports) as port:
        settings = server_settings(
            tmp_path / "data",
            free_port,
            receiver={"commitment": {"wait": 600, "poll_interval": 0.2, "retry": 0.5}},
            destinations={"MODALITY": {"host": "127.0.0.1", "port": port}},
        )
        paths = study(tmp_path, "later", 1, 2, patient="After^Restart", AccessionNumber="ACC-R")
        refs = [(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in map(pydicom.dcmread, paths)]
        with ServerUnderTest(settings) as first:
            assert ask(first.port, request(generate_uid(), refs), None) == 0x0000
        assert reports.received == []  # stopped before the instances came
        assert len(list(settings.paths.commitments.glob("*.json"))) == 1
        with ServerUnderTest(settings) as second:
            assert second.log_events("commitment.resumed")[0]["transactions"] == 1
            stored(second, paths)
            assert reports.arrived.wait(20)
    [(event_type, information)] = reports.received
    assert event_type == 1 and committed(information) == sorted(uid for _, uid in refs)
