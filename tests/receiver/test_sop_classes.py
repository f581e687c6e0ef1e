"""Which SOP classes are accepted: every storage class always; private and unknown ones as
storage too unless ``receiver.accept_unknown_sop_classes`` is off."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE

from tests.support.server import StartServer
from tests.support.services import sample

PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.9.9999.1"


def private_instance(folder: Path) -> Path:
    dataset = pydicom.dcmread(sample("CT_small.dcm"))
    dataset.SOPClassUID = PRIVATE_SOP_CLASS
    dataset.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID(PRIVATE_SOP_CLASS)
    path = folder / "private.dcm"
    dataset.save_as(path)
    return path


def offer(port: int, path: Path) -> tuple[bool, int | None]:
    """Propose the instance's class; whether its context was accepted, and the status."""
    dataset = pydicom.dcmread(path)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    association = ae.associate("127.0.0.1", port, ae_title="STORE_SERVER")
    try:
        accepted = bool(association.accepted_contexts)
        if not accepted:
            return False, None
        return True, int(association.send_c_store(dataset).Status)
    finally:
        association.release()


@pytest.mark.parametrize("accept_unknown", [True, False])
def test_private_sop_class(start_server: StartServer, tmp_path: Path, accept_unknown: bool) -> None:
    server = start_server(receiver={"accept_unknown_sop_classes": accept_unknown})

    private = offer(server.port, private_instance(tmp_path))
    standard = offer(server.port, sample("CT_small.dcm"))

    assert private == ((True, 0x0000) if accept_unknown else (False, None))
    assert standard == (True, 0x0000)
    assert len(server.spool) == (2 if accept_unknown else 1)
