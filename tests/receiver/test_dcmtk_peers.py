"""DCMTK's echoscu and storescu, real modalities nobody here wrote, against the server."""

from __future__ import annotations

import pydicom

from tests.conftest import Backend
from tests.receiver.conftest import published
from tests.support import dcmtk
from tests.support.server import StartServer
from tests.support.services import sample


def test_echoscu_gets_success(backend: Backend, start_server: StartServer) -> None:
    server = start_server(backend)
    outcome = dcmtk.echoscu(server.port)
    assert outcome.returncode == 0, outcome.output
    assert "Received Echo Response (Success)" in outcome.output
    assert server.log_events("echo")[0]["calling_ae"] == "ECHOSCU"


def test_storescu_instances_are_spooled_and_published(
    backend: Backend, start_server: StartServer
) -> None:
    server = start_server(backend)
    files = [sample(name) for name in ("CT_small.dcm", "MR_small.dcm")]
    outcome = dcmtk.storescu(server.port, files)
    assert outcome.store_statuses == ["Success", "Success"], outcome.output

    spooled = {pydicom.dcmread(path).SOPInstanceUID: path for path in server.spool}
    originals = {pydicom.dcmread(path).SOPInstanceUID: path for path in files}
    assert spooled.keys() == originals.keys()
    for uid, path in spooled.items():
        # storescu drops Data Set Trailing Padding when it sends; everything else arrives.
        original = pydicom.dcmread(originals[uid])
        original.pop(0xFFFCFFFC, None)
        arrived = pydicom.dcmread(path)
        assert arrived == original
        assert arrived.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID

    messages = {message.sop_instance_uid: message for message in published(server)}
    assert messages.keys() == originals.keys()
    for uid, message in messages.items():
        assert message.spool_name == spooled[uid].name
        assert message.calling_ae == "STORESCU"
        assert message.peer_address == "127.0.0.1"
        assert message.size == spooled[uid].stat().st_size

    received = server.log_events("instance.received")
    assert {event["sop_instance_uid"] for event in received} == set(originals)
    assert all(event["status"] == "0x0000" and event["size"] > 0 for event in received)
    assert server.log_events("association.released")[-1]["instances"] == 2
