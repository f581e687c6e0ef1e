"""C-GET: the instances come back on the requester's own association (DCMTK's getscu;
pynetdicom's SCU without the SCP role), as filed or uncompressed when that is all it takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage
from pynetdicom import AE, build_role, evt

from services.receiver.get import STUDY_ROOT
from tests.query.conftest import stored
from tests.support.query import findscu, getscu
from tests.support.server import ServerUnderTest
from tests.support.services import sample

Archive = Callable[..., ServerUnderTest]


def study_uid(server: ServerUnderTest, accession: str) -> str:
    keys = ["QueryRetrieveLevel=STUDY", f"AccessionNumber={accession}", "StudyInstanceUID"]
    return str(findscu(server.port, keys).matches[0].StudyInstanceUID)


def test_getscu_gets_a_study_on_its_own_association_as_filed(
    archive: Archive, tmp_path: Path
) -> None:
    server = archive()
    uid = study_uid(server, "ACC-A")
    output = tmp_path / "got"
    output.mkdir()
    got = getscu(server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"], output)
    assert got.final == "Success", got.output
    arrived = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, output.iterdir())}
    originals = {
        str(ds.SOPInstanceUID): ds
        for ds in map(pydicom.dcmread, server.settings.accounts_dir.rglob("*.dcm"))
        if ds.StudyInstanceUID == uid
    }
    assert arrived.keys() == originals.keys() and len(arrived) == 6
    for key, ds in arrived.items():
        assert ds == originals[key]
    assert "Number of Completed Suboperations : 6" in got.output
    done = server.log_events("get.done")[0]
    assert (done["completed"], done["failed"]) == (6, 0)


def test_a_compressed_instance_goes_uncompressed_to_a_peer_that_takes_only_that(
    archive: Archive, tmp_path: Path
) -> None:
    server = archive()
    jpeg = sample("SC_rgb_jpeg_dcmtk.dcm")
    stored(server, [jpeg], "--propose-jpeg8")  # kept as sent: JPEG Baseline
    original = pydicom.dcmread(jpeg)
    output = tmp_path / "got"
    output.mkdir()
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={original.StudyInstanceUID}"]
    got = getscu(server.port, keys, output)  # proposes uncompressed syntaxes only
    assert got.final == "Success", got.output
    [arrived] = [pydicom.dcmread(path) for path in output.iterdir()]
    assert not arrived.file_meta.TransferSyntaxUID.is_compressed
    assert arrived.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(arrived.pixel_array, original.pixel_array)


def test_a_peer_that_did_not_take_the_scp_role_gets_nothing_and_is_told(
    archive: Archive,
) -> None:
    server = archive()
    uid = study_uid(server, "ACC-C")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = uid
    ae = AE(ae_title="NOROLE")
    ae.add_requested_context(STUDY_ROOT)
    ae.add_requested_context(MRImageStorage)  # proposed, but without role selection
    assoc = ae.associate("127.0.0.1", server.port, ae_title="STORE_SERVER")
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_get(identifier, STUDY_ROOT))
    finally:
        assoc.release()
    final, failed = responses[-1]
    assert final.Status == 0xA702
    assert final.NumberOfFailedSuboperations == 3
    assert failed is not None and len(failed.FailedSOPInstanceUIDList) == 3
    reason = server.log_events("get.done")[0]["reason"]
    assert reason.startswith("no context for MR Image Storage"), reason

    # With the role taken, the same request succeeds.
    ae = AE(ae_title="WITHROLE")
    ae.add_requested_context(STUDY_ROOT)
    ae.add_requested_context(MRImageStorage)
    received: list[str] = []

    def keep(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="STORE_SERVER",
        ext_neg=[build_role(MRImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, keep)],
    )
    try:
        responses = list(assoc.send_c_get(identifier, STUDY_ROOT))
    finally:
        assoc.release()
    assert responses[-1][0].Status == 0x0000
    assert len(received) == 3
