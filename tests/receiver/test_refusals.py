"""Whenever the server cannot keep an instance safe, the sender is told so and nothing is kept.

0xA700 (out of resources) makes a modality retry later: low disk, a full bus queue, a broker
that does not confirm. 0xC000 (cannot understand) is for data that cannot be decoded, which is
quarantined with its reason for the administrator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config

from tests.receiver.conftest import refused
from tests.router.conftest import make_instance
from tests.support import dcmtk
from tests.support.proxy import BrokerProxy
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import sample

CT = sample("CT_small.dcm")
MR = sample("MR_small.dcm")
JPEG = sample("SC_rgb_jpeg_dcmtk.dcm")


def nothing_kept(server: ServerUnderTest) -> bool:
    spool = server.settings.spool_dir
    return not server.spool and not any((spool / "incoming").iterdir())


def test_low_disk_answers_out_of_resources(start_server: StartServer) -> None:
    server = start_server(receiver={"min_free_disk_mb": 2**40})

    outcome = dcmtk.storescu(server.port, [CT])

    assert outcome.store_statuses == ["Refused: OutOfResources"]
    assert nothing_kept(server)
    [refusal] = server.log_events("instance.refused")
    assert refusal["status"] == "0xA700"
    assert "below receiver.min_free_disk_mb" in refusal["reason"]


def test_full_bus_queue_answers_out_of_resources(start_server: StartServer) -> None:
    server = start_server(bus={"memory_queue_limit": 1})

    outcome = dcmtk.storescu(server.port, [CT, MR])

    assert outcome.store_statuses == ["Success", "Refused: OutOfResources"]
    assert [pydicom.dcmread(p).SOPInstanceUID for p in server.spool] == [
        pydicom.dcmread(CT).SOPInstanceUID
    ]
    assert not any((server.settings.spool_dir / "incoming").iterdir())


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[BrokerProxy]:
    with BrokerProxy("127.0.0.1", 5672) as running:
        yield running


def test_broker_gone_answers_out_of_resources_then_recovers(
    start_server: StartServer, proxy: BrokerProxy, exchange: str
) -> None:
    from tests.conftest import Backend

    server = start_server(
        Backend("production", proxy.url(), exchange, None),
        receiver={"publish_timeout": 3},
        bus={"publish_timeout": 2},
    )
    proxy.cut()
    refused = dcmtk.storescu(server.port, [CT])
    assert refused.store_statuses == ["Refused: OutOfResources"]
    assert nothing_kept(server)
    [refusal] = server.log_events("instance.refused")
    assert "bus did not confirm" in refusal["reason"]

    proxy.restore()
    # The robust connection comes back by itself; the modality's retry then succeeds.
    deadline = time.monotonic() + 60
    while True:
        retried = dcmtk.storescu(server.port, [CT])
        if retried.store_statuses == ["Success"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert retried.store_statuses == ["Success"], retried.output
    assert len(server.spool) == 1


def test_broker_not_confirming_answers_out_of_resources(
    start_server: StartServer, proxy: BrokerProxy, exchange: str
) -> None:
    from tests.conftest import Backend

    server = start_server(
        Backend("production", proxy.url(), exchange, None),
        receiver={"publish_timeout": 2},
        bus={"publish_timeout": 1},
    )
    proxy.freeze()
    outcome = dcmtk.storescu(server.port, [CT])
    proxy.thaw()

    assert outcome.store_statuses == ["Refused: OutOfResources"]
    assert nothing_kept(server)


def garbage_instance(folder: Path) -> Path:
    """A Part 10 file whose data set claims an element longer than the whole file."""
    path = folder / "garbage.dcm"
    meta = pydicom.dcmread(CT, stop_before_pixels=True).file_meta
    with path.open("wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(handle, meta, enforce_standard=True)  # type: ignore[arg-type]
        handle.write(b"\x08\x00\x18\x00UI\xf0\xff" + b"1.2.3" * 7)
    return path


def test_undecodable_data_set_is_refused_and_quarantined(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    sop_instance_uid = pydicom.dcmread(CT, stop_before_pixels=True).SOPInstanceUID
    ae = AE(ae_title="HOSTILE")
    ae.add_requested_context(pydicom.uid.CTImageStorage, "1.2.840.10008.1.2.1")
    _config.STORE_SEND_CHUNKED_DATASET = True  # sends the file's bytes without parsing them
    try:
        association = ae.associate("127.0.0.1", server.port, ae_title="STORE_SERVER")
        response = association.send_c_store(garbage_instance(tmp_path))
        association.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False

    assert response.Status == 0xC000
    assert nothing_kept(server)
    [reason_file] = server.settings.quarantine_dir.glob("*.reason.json")
    reason = json.loads(reason_file.read_text())
    assert reason["reason"].startswith("data set cannot be decoded")
    assert reason["calling_ae"] == "HOSTILE"
    assert reason["sop_instance_uid"] == sop_instance_uid
    kept = reason_file.with_name(reason_file.name.removesuffix(".reason.json"))
    assert dcmtk.dataset_bytes(kept) == dcmtk.dataset_bytes(garbage_instance(tmp_path))


def raw_instance(folder: Path, source: Path, syntax: str, name: str) -> Path:
    """``source``'s data set, byte for byte, under another transfer syntax in its file meta:
    what a modality with a broken encoder sends."""
    original = pydicom.dcmread(source, stop_before_pixels=True)
    meta = original.file_meta
    meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    path = folder / name
    with path.open("wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(handle, meta, enforce_standard=True)  # type: ignore[arg-type]
        handle.write(dcmtk.dataset_bytes(source))
    return path


def send_raw(port: int, path: Path) -> Dataset:
    """C-STORE the file's bytes as they are, in the syntax its file meta names."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    ae = AE(ae_title="HOSTILE")
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        association = ae.associate("127.0.0.1", port, ae_title="STORE_SERVER")
        assert association.is_established
        response: Dataset = association.send_c_store(path)
        association.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    return response


@pytest.mark.parametrize(
    ("source", "labelled", "said"),
    [
        (
            CT,
            "1.2.840.10008.1.2.4.50",
            "native (a defined length) but the transfer syntax is an encapsulated",
        ),
        (
            JPEG,
            "1.2.840.10008.1.2.1",
            "encapsulated (in fragments) but the transfer syntax is a native",
        ),
    ],
    ids=["native labelled JPEG", "JPEG labelled explicit little endian"],
)
def test_pixel_data_encoded_otherwise_than_labelled_is_refused(
    start_server: StartServer, tmp_path: Path, source: Path, labelled: str, said: str
) -> None:
    server = start_server()
    response = send_raw(server.port, raw_instance(tmp_path, source, labelled, "mislabelled.dcm"))
    assert response.Status == 0xC000
    assert response.ErrorComment.startswith("data set cannot be decoded")
    assert nothing_kept(server)
    [reason_file] = server.settings.quarantine_dir.glob("*.reason.json")
    assert said in json.loads(reason_file.read_text())["reason"]


@pytest.mark.parametrize(
    ("change", "missing", "tag"),
    [
        ({"StudyInstanceUID": None}, "Study Instance UID is missing", 0x0020000D),
        ({"SeriesInstanceUID": None}, "Series Instance UID is missing", 0x0020000E),
        ({"StudyInstanceUID": ["1.2.3", "1.2.4"]}, "Study Instance UID is not a UID", 0x0020000D),
        ({"SeriesInstanceUID": "1." * 40}, "Series Instance UID is not a UID", 0x0020000E),
    ],
    ids=["no study", "no series", "two study UIDs", "series UID of 80 characters"],
)
def test_what_could_never_be_filed_is_refused_at_the_door_and_not_kept(
    start_server: StartServer,
    tmp_path: Path,
    change: dict[str, object],
    missing: str,
    tag: int,
) -> None:
    server = start_server()
    path = make_instance(tmp_path, study_uid="1.2.826.0.1.3680043.2.1125.1", tags=change)

    outcome = dcmtk.storescu(server.port, [path])
    response = send_raw(server.port, path)

    assert outcome.store_statuses == ["Error: DataSetDoesNotMatchSOPClass"], outcome.output
    assert response.Status == 0xA900
    assert response.ErrorComment.startswith(missing)
    assert response.OffendingElement == tag
    assert nothing_kept(server)
    assert not list(server.settings.quarantine_dir.iterdir())
    refusals = server.log_events("instance.refused")
    assert [r["status"] for r in refusals] == ["0xA900", "0xA900"]
    assert all(r["reason"].startswith(missing) for r in refusals)
    assert [m.status for m in refused(server)] == [0xA900, 0xA900]
