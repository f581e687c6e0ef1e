"""echo and send with their defaults reach our own server, and a refusal says who and why.

The expectations are echoscu's: whatever it gets through, ``store-server echo`` gets through
with the same AE titles, and whatever refuses it refuses us, for the reason the peer sent.
"""

from __future__ import annotations

from collections.abc import Callable

from pynetdicom import AE

from tests.support import dcmtk
from tests.support.cli import store_server
from tests.support.server import StartServer
from tests.toolkit.conftest import StoreSCP, sample_file


def test_echo_and_send_reach_our_server_with_their_defaults(start_server: StartServer) -> None:
    server = start_server()
    assert dcmtk.echoscu(server.port, called_ae="STORE_SERVER").returncode == 0

    echoed = store_server("echo", "127.0.0.1", str(server.port))
    sent = store_server("send", "127.0.0.1", str(server.port), str(sample_file("CT_small.dcm")))

    assert (echoed.returncode, echoed.stderr) == (0, "")
    assert echoed.stdout.startswith("status 0x0000 (Success) in ")
    assert (sent.returncode, sent.stderr) == (0, "")
    assert sent.stdout.splitlines()[-1] == "1 sent, 0 failed, 1 files"
    [received] = server.log_events("instance.received")
    assert received["calling_ae"] == "STORE_SCU"


def test_an_unknown_called_ae_is_named_in_the_refusal(start_server: StartServer) -> None:
    server = start_server()
    assert dcmtk.echoscu(server.port, called_ae="FOO").rejected

    echoed = store_server("echo", "127.0.0.1", str(server.port), "--aec", "FOO")

    assert (echoed.returncode, echoed.stdout) == (1, "")
    assert echoed.stderr == (
        f"store-server echo: FOO@127.0.0.1:{server.port} rejected the association: "
        "called AE title 'FOO' not recognised (permanent)\n"
    )


def test_an_unknown_calling_ae_is_named_in_the_refusal(start_server: StartServer) -> None:
    server = start_server(receiver={"allowed_callers": ["MODALITY"]})
    assert dcmtk.echoscu(server.port, calling_ae="ME").rejected
    path = str(sample_file("CT_small.dcm"))

    sent = store_server("send", "127.0.0.1", str(server.port), path, "--aet", "ME")

    assert sent.returncode == 1
    assert sent.stdout.splitlines() == [
        f"FAILED  {path}: STORE_SERVER@127.0.0.1:{server.port} rejected the association: "
        "calling AE title 'ME' not recognised (permanent)",
        "0 sent, 1 failed, 1 files",
    ]
    assert not server.spool


def test_a_busy_server_refuses_for_now(start_server: StartServer) -> None:
    server = start_server(receiver={"max_associations": 1})
    holder = AE(ae_title="HOLDER")
    holder.add_requested_context("1.2.840.10008.1.1")
    held = holder.associate("127.0.0.1", server.port, ae_title="STORE_SERVER")
    assert held.is_established
    try:
        echoed = store_server("echo", "127.0.0.1", str(server.port))
    finally:
        held.release()

    assert echoed.returncode == 1
    assert echoed.stderr == (
        f"store-server echo: STORE_SERVER@127.0.0.1:{server.port} rejected the association: "
        "local limit exceeded (transient)\n"
    )


def test_echo_defaults_reach_storescp(start_storescp: Callable[..., StoreSCP]) -> None:
    peer = start_storescp()  # storescp answers to any called AE title
    assert dcmtk.echoscu(peer.port).returncode == 0

    echoed = store_server("echo", "127.0.0.1", str(peer.port))

    assert (echoed.returncode, echoed.stderr) == (0, "")


def test_a_refusing_storescp_gives_its_reason(start_storescp: Callable[..., StoreSCP]) -> None:
    peer = start_storescp("--refuse")
    assert dcmtk.echoscu(peer.port).rejected

    echoed = store_server("echo", "127.0.0.1", str(peer.port))

    assert echoed.returncode == 1
    assert echoed.stderr == (
        f"store-server echo: STORE_SERVER@127.0.0.1:{peer.port} rejected the association: "
        "no reason given (permanent)\n"
    )
