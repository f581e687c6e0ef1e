"""The listener against real senders: what each one sent arrives byte for byte.

The reference for "what was sent" is DCMTK's storescp in bit-preserving mode, sent the same
files by the same sender in the same way (senders re-encode a little, so the original file is
not the reference). Each instance's File Meta Information is ours: the calling AE title as
Source Application Entity Title, our Implementation Class UID and version name.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, build_role
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    UserIdentityNegotiation,
)

from services.receiver.file_meta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from shared.dicom.net import send
from tests.receiver.conftest import by_uid
from tests.support import dcmtk
from tests.support.orthanc import orthanc
from tests.support.process import run
from tests.support.raw_peer import RawPeer, associate_rq, store_pdus
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import require_tool, sample

FILES = [sample(name) for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm")]
FILES += [sample(name) for name in ("rtplan.dcm", "SC_rgb.dcm", "emri_small.dcm")]
NATIVE = [path for path in FILES if "jpeg" not in path.name]
Sender = Callable[[int, str], None]


def assert_same_as_reference(
    server: ServerUnderTest, reference: tuple[int, Path], sender: Sender, calling_ae: str
) -> int:
    """Send with ``sender`` to both; every spooled instance equals the reference's data set
    and carries our file meta; return how many were compared."""
    reference_port, reference_dir = reference
    sender(reference_port, "ANY-SCP")
    sender(server.port, "STORE_SERVER")
    sent = by_uid(sorted(reference_dir.iterdir()))
    spooled = by_uid(server.spool)
    assert spooled.keys() == sent.keys()
    for uid, reference_file in sent.items():
        ours = spooled[uid]
        assert dcmtk.dataset_bytes(ours) == dcmtk.dataset_bytes(reference_file), uid
        meta = pydicom.dcmread(ours, stop_before_pixels=True).file_meta
        theirs = pydicom.dcmread(reference_file, stop_before_pixels=True).file_meta
        assert meta.TransferSyntaxUID == theirs.TransferSyntaxUID
        assert meta.MediaStorageSOPClassUID == theirs.MediaStorageSOPClassUID
        assert meta.SourceApplicationEntityTitle == calling_ae
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    for path in [*reference_dir.iterdir(), *server.spool]:
        path.unlink()
    return len(sent)


@pytest.mark.parametrize("max_pdu", [4096, 16384, 65536, 131072])
def test_storescu_at_every_pdu_size_several_contexts_one_association(
    start_server: StartServer, storescp: tuple[int, Path], max_pdu: int
) -> None:
    server = start_server()

    def storescu(port: int, called_ae: str) -> None:
        # Without -R storescu proposes every storage SOP class it knows: over 100 contexts.
        options = ["--max-pdu", str(max_pdu)]
        outcome = dcmtk.storescu(port, NATIVE, called_ae=called_ae, options=options)
        assert outcome.store_statuses == ["Success"] * len(NATIVE), outcome.output

    assert assert_same_as_reference(server, storescp, storescu, "STORESCU") == len(NATIVE)
    [released] = server.log_events("association.released")
    assert released["instances"] == len(NATIVE)


@pytest.mark.parametrize(
    ("proposal", "names"),
    [
        ("-xs", ["JPEG-LL.dcm"]),
        ("-xe", ["CT_small.dcm", "MR_small.dcm"]),
        ("-xb", ["CT_small.dcm", "MR_small.dcm"]),
        ("-xi", ["CT_small.dcm", "rtplan.dcm"]),
        ("+C", ["CT_small.dcm", "rtplan.dcm"]),
    ],
)
def test_storescu_proposals_are_accepted_in_the_first_syntax_proposed(
    start_server: StartServer, storescp: tuple[int, Path], proposal: str, names: list[str]
) -> None:
    server = start_server()
    files = [sample(name) for name in names]

    def storescu(port: int, called_ae: str) -> None:
        outcome = dcmtk.storescu(port, files, called_ae=called_ae, options=[proposal])
        assert outcome.store_statuses == ["Success"] * len(files), outcome.output

    assert assert_same_as_reference(server, storescp, storescu, "STORESCU") == len(files)


def test_dcmsend_over_a_folder(
    start_server: StartServer, storescp: tuple[int, Path], tmp_path: Path
) -> None:
    server = start_server()
    folder = tmp_path / "study"
    (folder / "nested").mkdir(parents=True)
    for index, path in enumerate(FILES):
        shutil.copy(path, folder / ("nested" if index % 2 else "") / path.name)

    def dcmsend(port: int, called_ae: str) -> None:
        command = [require_tool("dcmsend"), "-aet", "DCMSEND", "-aec", called_ae]
        command += ["--scan-directories", "--recurse", "127.0.0.1", str(port), str(folder)]
        outcome = run(command, env=dcmtk.ENVIRONMENT)
        assert outcome.returncode == 0, outcome.stdout + outcome.stderr

    assert assert_same_as_reference(server, storescp, dcmsend, "DCMSEND") == len(FILES)


def test_orthanc_as_sender(
    start_server: StartServer, storescp: tuple[int, Path], tmp_path: Path
) -> None:
    server = start_server()
    modalities = {"ours": ("STORE_SERVER", server.port), "reference": ("ANY-SCP", storescp[0])}
    with orthanc(tmp_path / "orthanc", modalities) as sender:
        instances = sender.upload(FILES)

        def orthanc_store(port: int, called_ae: str) -> None:
            sender.store("ours" if port == server.port else "reference", instances)

        assert assert_same_as_reference(server, storescp, orthanc_store, "ORTHANC") == len(FILES)


def test_the_toolkits_own_send(start_server: StartServer, storescp: tuple[int, Path]) -> None:
    server = start_server()

    def toolkit(port: int, called_ae: str) -> None:
        summary = send("127.0.0.1", port, FILES, called_aet=called_ae, calling_aet="TOOLKIT")
        assert [result.status for result in summary.results] == [0] * len(FILES)

    assert assert_same_as_reference(server, storescp, toolkit, "TOOLKIT") == len(FILES)


def test_pynetdicom_with_role_selection_user_identity_and_an_operations_window(
    start_server: StartServer,
) -> None:
    server = start_server(receiver={"user_identities": ["tech:secret"], "max_operations": 4})
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    identity = UserIdentityNegotiation()
    identity.user_identity_type = 2
    identity.primary_field = b"tech"
    identity.secondary_field = b"secret"
    identity.positive_response_requested = True
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 16
    window.maximum_number_operations_performed = 1
    role = build_role(CTImageStorage, scu_role=True, scp_role=False)

    association = ae.associate(
        "127.0.0.1", server.port, ae_title="STORE_SERVER", ext_neg=[identity, window, role]
    )
    assert association.is_established
    status = association.send_c_store(FILES[0])
    acceptor = association.acceptor
    association.release()

    assert status.Status == 0x0000
    assert acceptor.implementation_class_uid == IMPLEMENTATION_CLASS_UID
    assert acceptor.implementation_version_name == IMPLEMENTATION_VERSION_NAME
    assert acceptor.asynchronous_operations == (1, 4)
    assert [context.as_scu for context in association.accepted_contexts] == [True]
    assert len(server.spool) == 1

    identity.secondary_field = b"wrong"
    refused = ae.associate("127.0.0.1", server.port, ae_title="STORE_SERVER", ext_neg=[identity])
    assert refused.is_rejected
    [rejection] = server.log_events("association.rejected")
    assert "receiver.user_identities" in rejection["reason"]


def test_requests_inside_the_operations_window_are_answered_without_waiting(
    start_server: StartServer,
) -> None:
    """Three C-STOREs sent back to back, before any response: three Success responses."""
    server = start_server(receiver={"max_operations": 4})
    instances = []
    for _ in range(3):
        instance = pydicom.dcmread(FILES[0])
        instance.SOPInstanceUID = generate_uid()
        instances.append(instance)
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(CTImageStorage, ExplicitVRLittleEndian, operations=3))
        pdu_type, _ = peer.pdu()
        assert pdu_type == 0x02
        for message_id, instance in enumerate(instances, start=1):
            encoded = explicit_little_endian(instance)
            peer.send(*store_pdus(CTImageStorage, instance.SOPInstanceUID, encoded, message_id))
        statuses = [peer.store_status() for _ in instances]
    assert statuses == [0x0000] * 3
    assert len(server.spool) == 3


def explicit_little_endian(dataset: pydicom.Dataset) -> bytes:
    """The data set in Explicit VR Little Endian, without file meta."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, dataset)
    return buffer.getvalue()
