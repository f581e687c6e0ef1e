"""Mutual TLS with the site's CA, and AE titles bound to certificates: DCMTK's echoscu and
storescu (and the toolkit's send) with the right certificate, another modality's, an expired
one, one the CA never signed, and none."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.dicom.net import client_tls_context, send
from tests.receiver.conftest import reported
from tests.support import dcmtk
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import free_tcp_port, sample
from tests.support.tls import SiteCA, make_certificate


@pytest.fixture
def site(start_server: StartServer, tmp_path: Path) -> tuple[ServerUnderTest, SiteCA, Path, int]:
    """A receiver on a TLS port trusting the site CA, CT_ROOM1 bound to its certificate."""
    ca = SiteCA(tmp_path / "ca")
    key, cert = make_certificate(tmp_path, "server", address="127.0.0.1")
    port = free_tcp_port()
    tls = {
        "port": port,
        "cert": cert,
        "key": key,
        "ca": ca.cert,
        "subjects": {"CT_ROOM1": "CT_ROOM1"},
    }
    return start_server(receiver={"tls": tls}), ca, cert, port


def options(client: tuple[Path, Path], server_cert: Path) -> list[str]:
    key, cert = client
    return ["+tls", str(key), str(cert), "+cf", str(server_cert)]


def test_a_bound_ae_title_calls_with_its_own_certificate_only(
    site: tuple[ServerUnderTest, SiteCA, Path, int],
) -> None:
    server, ca, server_cert, port = site
    ct, mr = ca.sign("CT_ROOM1"), ca.sign("MR_ROOM2")
    ok = dcmtk.storescu(
        port, [sample("CT_small.dcm")], calling_ae="CT_ROOM1", options=options(ct, server_cert)
    )
    assert ok.store_statuses == ["Success"], ok.output
    # MR_ROOM2 is bound to nothing: its valid certificate admits it as itself.
    assert (
        dcmtk.echoscu(port, calling_ae="MR_ROOM2", options=options(mr, server_cert)).returncode == 0
    )
    posing = dcmtk.echoscu(port, calling_ae="CT_ROOM1", options=options(mr, server_cert))
    assert posing.rejected, posing.output
    borrowed = dcmtk.echoscu(port, calling_ae="US_ROOM3", options=options(ct, server_cert))
    assert borrowed.rejected, borrowed.output
    plain = dcmtk.echoscu(server.port, calling_ae="CT_ROOM1")
    assert plain.rejected, plain.output
    reasons = [event["reason"] for event in server.log_events("association.rejected")]
    assert reasons == [
        "calling AE title 'CT_ROOM1' must present the certificate of 'CT_ROOM1', not of 'MR_ROOM2'",
        "the certificate of 'CT_ROOM1' is bound to CT_ROOM1, not 'US_ROOM3'",
        "calling AE title 'CT_ROOM1' must call over TLS with its certificate",
    ]
    refused = reported(server, "association_refused", 3)
    assert [event.detail["reason"] for event in refused] == reasons
    assert [event.detail["tls"] for event in refused] == [True, True, False]
    # One alert a minute per kind and address: the first, then the others counted in the next.
    [alert] = reported(server, "security_alert")
    assert alert.detail["alert"] == "certificate" and alert.detail["reason"] == reasons[0]


def test_an_expired_or_unsigned_certificate_or_none_cannot_connect(
    site: tuple[ServerUnderTest, SiteCA, Path, int], tmp_path: Path
) -> None:
    server, ca, server_cert, port = site
    expired = ca.sign("CT_ROOM1", expired=True)
    stranger = make_certificate(tmp_path, "CT_ROOM1")  # the right name, no signature of ours
    for client in (expired, stranger):
        refused = dcmtk.echoscu(port, calling_ae="CT_ROOM1", options=options(client, server_cert))
        assert refused.returncode != 0 and not refused.rejected, refused.output  # no handshake
    none = dcmtk.echoscu(port, calling_ae="MR_ROOM2", options=["+tla", "+cf", str(server_cert)])
    assert none.returncode != 0
    assert server.log_events("association.accepted") == []
    # The toolkit's send, with the site's certificate, and with an expired one.
    good = client_tls_context(server_cert, *reversed(ca.sign("CT_ROOM1")))
    sent = send(
        "127.0.0.1",
        port,
        [sample("MR_small.dcm")],
        calling_aet="CT_ROOM1",
        called_aet="STORE_SERVER",
        tls=good,
    )
    assert [result.status for result in sent.results] == [0]
    old = client_tls_context(server_cert, *reversed(expired))
    failed = send(
        "127.0.0.1",
        port,
        [sample("MR_small.dcm")],
        calling_aet="CT_ROOM1",
        called_aet="STORE_SERVER",
        tls=old,
        timeout=5,
    )
    assert [result.outcome for result in failed.results] == ["failed"]
    # Each failed handshake logged with its reason; the first an alert in the audit trail.
    handshakes = server.log_events("connection.tls_refused")
    assert len(handshakes) >= 4, handshakes
    assert any("certificate" in event["reason"].lower() for event in handshakes), handshakes
    [alert] = reported(server, "security_alert")
    assert alert.detail["alert"] == "tls_handshake"
    assert alert.detail["reason"] == handshakes[0]["reason"]
