"""Who may associate: the calling AE allowlist (optionally per host) and our called AE title."""

from __future__ import annotations

from tests.support import dcmtk
from tests.support.server import StartServer


def test_unknown_calling_ae_is_rejected_when_an_allowlist_is_set(
    start_server: StartServer,
) -> None:
    server = start_server(receiver={"allowed_callers": ["CT_ROOM1", "MR_ROOM2"]})

    refused = dcmtk.echoscu(server.port, calling_ae="INTRUDER")
    allowed = dcmtk.echoscu(server.port, calling_ae="MR_ROOM2")

    assert refused.rejected and "Calling AE Title Not Recognized" in refused.output
    assert allowed.returncode == 0, allowed.output
    [rejection] = server.log_events("association.rejected")
    assert rejection["calling_ae"] == "INTRUDER"
    assert "not in receiver.allowed_callers" in rejection["reason"]


def test_allowed_calling_ae_from_another_host_is_rejected(start_server: StartServer) -> None:
    server = start_server(receiver={"allowed_callers": ["CT_ROOM1@192.0.2.10"]})

    outcome = dcmtk.echoscu(server.port, calling_ae="CT_ROOM1")

    assert outcome.rejected
    [rejection] = server.log_events("association.rejected")
    assert rejection["reason"] == "calling AE title 'CT_ROOM1' is not allowed from 127.0.0.1"


def test_allowlist_entry_with_the_right_host_is_accepted(start_server: StartServer) -> None:
    server = start_server(receiver={"allowed_callers": ["CT_ROOM1@127.0.0.1"]})
    assert dcmtk.echoscu(server.port, calling_ae="CT_ROOM1").returncode == 0


def test_wrong_called_ae_is_rejected_when_required(start_server: StartServer) -> None:
    server = start_server()

    outcome = dcmtk.echoscu(server.port, called_ae="SOMEONE_ELSE")

    assert outcome.rejected and "Called AE Title Not Recognized" in outcome.output
    [rejection] = server.log_events("association.rejected")
    assert "called AE title 'SOMEONE_ELSE' is not ours" in rejection["reason"]


def test_any_called_ae_is_accepted_when_not_required(start_server: StartServer) -> None:
    server = start_server(receiver={"require_called_ae": False})
    assert dcmtk.echoscu(server.port, called_ae="SOMEONE_ELSE").returncode == 0
