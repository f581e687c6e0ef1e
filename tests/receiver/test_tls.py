"""DICOM over TLS: a second listener beside the plain one, optionally requiring client
certificates, checked with DCMTK's echoscu and storescu as the TLS peers."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.dicom.net import NetError, client_tls_context, echo, send
from tests.support import dcmtk
from tests.support.server import StartServer
from tests.support.services import free_tcp_port, sample
from tests.support.tls import make_certificate


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {name: make_certificate(tmp_path, name) for name in ("server", "modality", "stranger")}


def tls_options(client: tuple[Path, Path], trusted: Path) -> list[str]:
    key, cert = client
    return ["+tls", str(key), str(cert), "+cf", str(trusted)]


def test_tls_listener_with_client_certificates(
    start_server: StartServer, certificates: dict[str, tuple[Path, Path]]
) -> None:
    server_key, server_cert = certificates["server"]
    tls_port = free_tcp_port()
    server = start_server(
        receiver={
            "tls": {
                "port": tls_port,
                "cert": server_cert,
                "key": server_key,
                "ca": certificates["modality"][1],
            }
        }
    )
    trusted = tls_options(certificates["modality"], server_cert)
    echoed = dcmtk.echoscu(tls_port, options=trusted)
    stored = dcmtk.storescu(tls_port, [sample("CT_small.dcm")], options=trusted)
    stranger = dcmtk.echoscu(tls_port, options=tls_options(certificates["stranger"], server_cert))
    plain_on_tls_port = dcmtk.echoscu(tls_port)

    assert echoed.returncode == 0, echoed.output
    assert stored.store_statuses == ["Success"], stored.output
    assert len(server.spool) == 1
    assert stranger.returncode != 0  # its certificate is not signed by the configured CA
    assert plain_on_tls_port.returncode != 0
    assert dcmtk.echoscu(server.port).returncode == 0  # the plain listener still answers


def test_toolkit_echo_and_send_over_tls(
    start_server: StartServer, certificates: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    key, cert = make_certificate(tmp_path, "localhost", address="127.0.0.1")
    tls_port = free_tcp_port()
    server = start_server(receiver={"tls": {"port": tls_port, "cert": cert, "key": key}})
    context = client_tls_context(ca_file=cert)

    echoed = echo("127.0.0.1", tls_port, called_aet="STORE_SERVER", tls=context)
    summary = send(
        "127.0.0.1", tls_port, [sample("CT_small.dcm")], called_aet="STORE_SERVER", tls=context
    )
    untrusted = client_tls_context(ca_file=certificates["stranger"][1])

    assert echoed.ok
    assert [result.status for result in summary.results] == [0]
    assert len(server.spool) == 1
    with pytest.raises(NetError):
        echo("127.0.0.1", tls_port, called_aet="STORE_SERVER", tls=untrusted, timeout=5)
