"""The receiver killed at the worst moments, then restarted: nothing half-done is visible and
nothing fsynced is lost. SIGTERM, by contrast, lets the stores in flight finish."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from shared.messages import InstanceReceived
from tests.receiver.conftest import peek_amqp
from tests.support import dcmtk
from tests.support.process import Background, ServerProcess, wait_until
from tests.support.proxy import BrokerProxy
from tests.support.services import sample

CT = sample("CT_small.dcm")


def large_instance(folder: Path, megabytes: int = 96) -> Path:
    """A multi-frame instance big enough that its transfer takes a while."""
    dataset = pydicom.dcmread(CT)
    frames = megabytes * 2**20 // (1024 * 1024 * 2)
    dataset.Rows = dataset.Columns = 1024
    dataset.NumberOfFrames = frames
    dataset.SOPInstanceUID = generate_uid()
    dataset.PixelData = (
        np.random.default_rng(7)
        .integers(0, 4096, size=(frames, 1024, 1024), dtype=np.uint16)
        .tobytes()
    )
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "large.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[BrokerProxy]:
    with BrokerProxy("127.0.0.1", 5672) as running:
        yield running


def receiver(tmp_path: Path, port: int, bus_url: str, exchange: str) -> ServerProcess:
    return ServerProcess(
        ["receiver", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--bus", bus_url],
        port=port,
        log_path=tmp_path / "receiver.log",
        environment={
            "STORE_SERVER_BUS__EXCHANGE": exchange,
            "STORE_SERVER_RECEIVER__HOST": "127.0.0.1",
        },
    )


def spooled(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "spool").glob("*.dcm"))


def test_killed_mid_transfer_leaves_no_partial_file(
    tmp_path: Path, free_port: int, amqp_url: str, exchange: str
) -> None:
    incoming = tmp_path / "data" / "spool" / "incoming"
    big = large_instance(tmp_path)
    with receiver(tmp_path, free_port, amqp_url, exchange) as first:
        sender = Background(dcmtk.storescu_command(free_port, [Path(big)]), env=dcmtk.ENVIRONMENT)
        wait_until(
            lambda: any(p.stat().st_size > 2**20 for p in incoming.iterdir()),
            message="the transfer never started",
        )
        first.kill()
        assert sender.finish(30).returncode != 0
        assert any(incoming.iterdir()), "the partial transfer should be on disk before restart"

    with receiver(tmp_path, free_port, amqp_url, exchange) as second:
        assert not list(incoming.iterdir())
        assert spooled(tmp_path) == []
        assert "spool.partial_transfers_removed" in second.output
    assert asyncio_run(peek_amqp(amqp_url, exchange)) == []


def test_fsynced_but_unpublished_instance_is_published_after_restart(
    tmp_path: Path, free_port: int, proxy: BrokerProxy, exchange: str
) -> None:
    with receiver(tmp_path, free_port, proxy.url(), exchange) as first:
        proxy.freeze()  # the broker stops answering: the publish confirm never comes
        sender = Background(dcmtk.storescu_command(free_port, [Path(CT)]), env=dcmtk.ENVIRONMENT)
        wait_until(lambda: spooled(tmp_path), message="the instance never reached the spool")
        first.kill()
        sender.finish(30)
    # Dropped on the way: the frozen publish never reaches the broker.
    proxy.cut()
    proxy.restore()
    [waiting] = spooled(tmp_path)
    assert stat.S_IMODE(waiting.stat().st_mode) == 0o600  # fsynced, not yet published

    with receiver(tmp_path, free_port, proxy.url(), exchange) as second:
        wait_until(lambda: "spool.republished" in second.output, message="no re-publish")
        bodies = asyncio_run(peek_amqp(proxy.url(), exchange))
    assert len(bodies) == 1
    published = InstanceReceived.model_validate_json(bodies[0])
    assert published.sop_instance_uid == pydicom.dcmread(CT).SOPInstanceUID
    assert published.spool_name == waiting.name
    assert published.calling_ae == "STORESCU"  # kept with the file, not lost in the crash
    assert stat.S_IMODE(waiting.stat().st_mode) == 0o640


def test_sigterm_lets_the_association_in_flight_finish(tmp_path: Path, free_port: int) -> None:
    copies = [tmp_path / f"ct{index}.dcm" for index in range(300)]
    dataset = pydicom.dcmread(CT)
    for path in copies:
        dataset.SOPInstanceUID = generate_uid()
        dataset.save_as(path)
    server = ServerProcess(
        ["run", "--data-dir", str(tmp_path / "data"), "--port", str(free_port)],
        port=free_port,
        log_path=tmp_path / "run.log",
        environment={"STORE_SERVER_RECEIVER__HOST": "127.0.0.1"},
    )
    with server:
        sender = Background(dcmtk.storescu_command(free_port, copies), env=dcmtk.ENVIRONMENT)
        wait_until(lambda: spooled(tmp_path), message="nothing arrived")
        exit_code = server.terminate()
        sent = sender.finish(60)
        assert exit_code == 0, server.output
    assert sent.returncode == 0, sent.stdout
    # Each instance is either filed by the router or still in the spool, never lost or doubled.
    kept = spooled(tmp_path) + sorted((tmp_path / "data" / "accounts").rglob("*.dcm"))
    assert len(kept) == len(copies)
    assert "receiver.draining" in server.output
    late = dcmtk.echoscu(free_port)
    assert late.returncode != 0  # no longer accepting


def asyncio_run(coroutine: Coroutine[Any, Any, list[bytes]]) -> list[bytes]:
    return asyncio.run(coroutine)
