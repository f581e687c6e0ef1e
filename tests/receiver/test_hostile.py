"""Peers that misbehave, on purpose or not, while a real modality keeps being served.

Each scenario opens its hostile connections, then sends with DCMTK's storescu while they are
still open: the modality must get Success. Whatever a hostile peer started is not kept and not
announced; memory stays bounded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from tests.receiver.conftest import published, refused
from tests.support import dcmtk
from tests.support.process import wait_until
from tests.support.raw_peer import RawPeer, associate_rq, store_pdus
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import free_tcp_port, sample
from tests.support.tls import make_certificate

CT = sample("CT_small.dcm")


def modality_is_served(server: ServerUnderTest, port: int | None = None) -> None:
    outcome = dcmtk.storescu(port or server.port, [CT])
    assert outcome.store_statuses == ["Success"], outcome.output


def nothing_kept(server: ServerUnderTest) -> bool:
    return not any((server.settings.spool_dir / "incoming").iterdir())


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=60)


def was_closed(connection: socket.socket) -> bool:
    """Whether the server closed the connection (reset, when it left bytes unread)."""
    try:
        return connection.recv(100) == b""
    except ConnectionResetError:
        return True


def test_idle_connections_do_not_lock_modalities_out(start_server: StartServer) -> None:
    server = start_server(receiver={"max_connections": 8, "acse_timeout": 300})
    idle = [connect(server.port) for _ in range(20)]
    try:
        modality_is_served(server)
        modality_is_served(server)
    finally:
        for connection in idle:
            connection.close()
    assert len(server.log_events("connection.displaced")) >= 12


def test_a_request_dribbled_a_byte_a_second_is_cut_off(start_server: StartServer) -> None:
    server = start_server(receiver={"max_connections": 8, "acse_timeout": 2})
    request = associate_rq(CTImageStorage)
    stop = threading.Event()
    dribblers = [connect(server.port) for _ in range(21)]

    def dribble(connection: socket.socket) -> None:
        for byte in request:
            if stop.is_set():
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return
            stop.wait(1)

    threads = [threading.Thread(target=dribble, args=(c,)) for c in dribblers]
    for thread in threads:
        thread.start()
    try:
        modality_is_served(server)
        # Each dribbler is closed: by the ARTIM timer, or displaced by a newer connection.
        for connection in dribblers:
            assert was_closed(connection)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for connection in dribblers:
            connection.close()
    modality_is_served(server)
    assert server.log_events("connection.timed_out")


def test_a_pdu_declaring_4_gib_is_refused_as_it_is_announced(start_server: StartServer) -> None:
    server = start_server()
    with RawPeer(server.port) as before_association:
        before_association.send(b"\x01\x00\xff\xff\xff\xff" + b"\0" * 1024)
        assert before_association.closed()
    with RawPeer(server.port) as associated:
        associated.send(associate_rq(CTImageStorage))
        assert associated.pdu()[0] == 0x02
        associated.send(b"\x04\x00\xff\xff\xff\xff" + b"\0" * 1024)
        pdu_type, body = associated.pdu()
        assert (pdu_type, body[-2:]) == (0x07, b"\x02\x06")  # A-P-ABORT, invalid parameter
        assert associated.closed()
    modality_is_served(server)
    [aborted] = server.log_events("association.aborted")
    assert "above the 262144 we advertised" in aborted["reason"]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_huge_data_set_streams_through_bounded_memory(start_server: StartServer) -> None:
    """A PDU and PDV declaring 4 GiB, without any length limit: 256 MiB of it are streamed to
    disk, then the peer drops the connection; memory grew by far less than what was sent,
    and nothing of it is kept or announced."""
    server = start_server(receiver={"max_pdu_size": 0})
    instance = pydicom.dcmread(CT)
    command, *_ = store_pdus(CTImageStorage, instance.SOPInstanceUID, b"", 1)
    before = rss_mb()
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(CTImageStorage))
        assert peer.pdu()[0] == 0x02
        peer.send(command)
        peer.send(b"\x04\x00\xff\xff\xff\xff" + b"\xff\xff\xff\xf9\x01\x02")  # PDV: data set
        block = os.urandom(1 << 20)
        for _ in range(256):
            peer.socket.sendall(block)
    modality_is_served(server)
    grown = rss_mb() - before
    assert grown < 64, f"{grown:.0f} MB more after streaming 256 MiB"
    assert nothing_kept(server)
    assert len(server.spool) == 1  # the modality's instance only
    assert len(published(server)) == 1


@pytest.mark.parametrize("ending", ["A-ABORT", "dropped TCP"])
def test_a_data_set_cut_off_is_neither_kept_nor_announced(
    start_server: StartServer, ending: str
) -> None:
    server = start_server()
    instance = pydicom.dcmread(CT)
    encoded = Path(CT).read_bytes()[-60000:]  # the first fragments of a data set, not all
    pdus = store_pdus(CTImageStorage, instance.SOPInstanceUID, encoded, 1, max_pdu=4096)
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(CTImageStorage))
        assert peer.pdu()[0] == 0x02
        peer.send(*pdus[:-3])  # the command and most of the data set, not its last fragment
        if ending == "A-ABORT":
            peer.send(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")
            assert peer.closed()
    wait_until(lambda: server.log_events("association.aborted"), message="the abort noticed")
    assert nothing_kept(server)
    assert server.spool == []
    modality_is_served(server)
    assert len(published(server)) == 1  # the modality's instance, not the one cut off
    assert refused(server) == []
    [cut] = server.log_events("association.aborted")
    assert cut["calling_ae"] == "RAWPEER" and cut["instances"] == 0


@pytest.mark.parametrize("stall", ["silent", "dribbling"])
def test_a_peer_that_stalls_mid_data_set_is_cut_off_at_the_dimse_timeout(
    start_server: StartServer, stall: str
) -> None:
    """Associated, half a data set sent, then nothing (or a byte every half second inside a
    PDU): the connection is closed once a read has waited ``receiver.dimse_timeout`` (inside a
    request), what was received is not kept, and a modality is served meanwhile."""
    server = start_server(receiver={"dimse_timeout": 2})
    instance = pydicom.dcmread(CT)
    encoded = Path(CT).read_bytes()[-60000:]
    pdus = store_pdus(CTImageStorage, instance.SOPInstanceUID, encoded, 1, max_pdu=4096)
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(CTImageStorage))
        assert peer.pdu()[0] == 0x02
        peer.send(*pdus[:5])
        modality_is_served(server)
        if stall == "dribbling":
            next_pdu = pdus[5]
            peer.send(next_pdu[:10])
            for byte in next_pdu[10:20]:
                time.sleep(0.5)
                with contextlib.suppress(OSError):
                    peer.socket.sendall(bytes([byte]))
        wait_until(lambda: server.log_events("association.aborted"), 10, "the stalled peer cut off")
        assert peer.closed()
    [cut] = server.log_events("association.aborted")
    assert cut["reason"] == "nothing received for 2 s"
    assert nothing_kept(server)
    assert len(published(server)) == 1  # the modality's instance only


def test_random_bytes_on_many_connections(start_server: StartServer) -> None:
    server = start_server()
    threads_before = threading.active_count()
    connections = []
    for index in range(400):
        connection = connect(server.port)
        connection.sendall(os.urandom(64 + index))
        connections.append(connection)
    modality_is_served(server)
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.recv(100)
        connection.close()
    modality_is_served(server)
    # No thread per connection: at most the intake's pool was started meanwhile.
    assert threading.active_count() <= threads_before + server.settings.receiver.io_threads


def test_an_idle_tls_connection_blocks_no_handshake(
    start_server: StartServer, tmp_path: Path
) -> None:
    key, cert = make_certificate(tmp_path, "server")
    tls_port = free_tcp_port()
    server = start_server(
        receiver={"tls": {"port": tls_port, "cert": cert, "key": key, "only": True}}
    )
    idle = [connect(tls_port) for _ in range(5)]
    try:
        stored = dcmtk.storescu(tls_port, [CT], options=["+tla", "-ic"])
    finally:
        for connection in idle:
            connection.close()
    assert stored.store_statuses == ["Success"], stored.output
    assert server.running is not None and server.running.receiver is not None
    assert server.running.receiver.ports == [tls_port]  # TLS only: no plain port


@pytest.fixture
def tiny_spool(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB filesystem where the server's spool will be (mounting needs root)."""
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(spool)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def test_a_disk_that_fills_mid_transfer(start_server: StartServer, tiny_spool: Path) -> None:
    server = start_server(receiver={"min_free_disk_mb": 0})
    big = pydicom.dcmread(CT)
    big.SOPInstanceUID = generate_uid()
    big.PixelData = os.urandom(4 * 2**20)
    big.Rows, big.Columns = 1024, 2048
    path = tiny_spool.parent.parent / "big.dcm"
    big.save_as(path, enforce_file_format=True)

    outcome = dcmtk.storescu(server.port, [path])

    assert outcome.store_statuses == ["Refused: OutOfResources"], outcome.output
    assert nothing_kept(server)
    modality_is_served(server)  # the space the partial file held is free again
    [refusal] = server.log_events("instance.refused")
    assert refusal["reason"] == "spool write failed: No space left on device"
    assert [m.sop_instance_uid for m in published(server)] == [pydicom.dcmread(CT).SOPInstanceUID]


def test_memory_stays_bounded_with_many_idle_connections(start_server: StartServer) -> None:
    server = start_server()
    before = rss_mb()
    idle = [connect(server.port) for _ in range(200)]
    try:
        modality_is_served(server)
        grown = rss_mb() - before
    finally:
        for connection in idle:
            connection.close()
    assert grown < 30, f"{grown:.0f} MB for 200 idle connections"
