"""A data set whose sequences nest deeper than pydicom reads (a hostile dose report) never
reaches the index by DICOM: the receiver refuses it with the reason and keeps it in
quarantine; and the indexer, given such a file all the same, reports it unreadable rather
than failing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.filereader import read_file_meta_info

from services.indexer.header import HeaderError, read_instance
from shared.dicom.preamble import data_set_offset
from shared.messages import InstanceFiled
from tests.support import dcmtk
from tests.support.process import wait_until
from tests.support.raw_peer import RawPeer, associate_rq, store_pdus
from tests.support.server import StartServer
from tests.support.services import sample
from tests.toolkit.test_dose import deeply_nested


def test_a_data_set_nested_too_deep_is_filed_and_reported_unreadable_alone(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    deep = deeply_nested(tmp_path / "deep.dcm", 10_000)
    meta = read_file_meta_info(deep)
    with deep.open("rb") as handle:
        data_set_offset(handle)
        encoded = handle.read()
    # Sent as a hostile peer would: DCMTK and pydicom cannot read the file to send it.
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(str(meta.MediaStorageSOPClassUID)))
        assert peer.pdu()[0] == 0x02  # A-ASSOCIATE-AC
        sop_class, sop_instance = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        peer.send(*store_pdus(str(sop_class), str(sop_instance), encoded, 1))
        assert peer.store_status() == 0xC000
    [refused] = server.log_events("instance.refused")
    assert "sequences nested deeper than 32" in str(refused["reason"])
    assert len(list(server.settings.quarantine_dir.glob("*.reason.json"))) == 1  # kept, why
    outcome = dcmtk.storescu(server.port, [sample("CT_small.dcm")])
    assert outcome.store_statuses == ["Success"], outcome.output
    wait_until(lambda: server.log_events("index.batch_written"), message="the CT was never indexed")


def test_the_indexer_reports_a_file_nested_too_deep_as_unreadable(tmp_path: Path) -> None:
    deep = deeply_nested(tmp_path / "deep.dcm", 10_000)
    message = InstanceFiled(
        sop_instance_uid="1.2.3.4",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        account="Unknown",
        path="deep.dcm",
        size=deep.stat().st_size,
        received_at=datetime.now(UTC),
        calling_ae="RAWPEER",
    )
    with pytest.raises(HeaderError, match="nested too deep"):
        read_instance(deep, message)
