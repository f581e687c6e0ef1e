"""The receiver's per-instance byte templates against pynetdicom's and pydicom's encoders.

The C-STORE-RSP and the File Meta Information are written from templates on the hot path;
here each one is encoded both ways and must come out the same, byte for byte.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF

from services.receiver.dimse import Command, Reply, decode_command, response, store_success
from services.receiver.file_meta import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    file_meta,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
# Odd and even lengths (UIDs are padded), up to the longest a UID may be.
UIDS = ["1.2.3", "1.2.826.0.1.3680043.8.498." + "1" * 37, "1.2.826.0.1.3680043.8.498." + "1" * 38]


def store_request(sop_class: str, sop_instance: str, message_id: int, context_id: int) -> Command:
    """A C-STORE-RQ command set as pynetdicom encodes it, decoded by the receiver."""
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 2
    primitive.DataSet = BytesIO(b"\x08\x00\x18\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    [command_pdu, *_] = list(message.encode_msg(context_id, 0))
    [(_, fragment)] = command_pdu.presentation_data_value_list
    return decode_command(context_id, fragment[1:])


@pytest.mark.parametrize("sop_instance", UIDS)
@pytest.mark.parametrize("message_id", [1, 0xFFFF])
@pytest.mark.parametrize("context_id", [1, 255])
def test_success_response_template_is_pynetdicoms_encoding(
    sop_instance: str, message_id: int, context_id: int
) -> None:
    command = store_request(CT, sop_instance, message_id, context_id)
    # pynetdicom's own chain: primitive, C_STORE_RSP, encode_msg, P_DATA_TF.
    assert store_success(command, 16384) == response(command, Reply(0x0000), 16384)
    assert len(store_success(command, 16384)) == 1


def test_a_peer_with_tiny_pdus_gets_the_response_fragmented() -> None:
    command = store_request(CT, UIDS[1], 7, 3)
    pdus = store_success(command, 32)
    assert len(pdus) > 1
    assert all(int.from_bytes(pdu[2:6], "big") <= 32 for pdu in pdus)
    decoded = P_DATA_TF()
    decoded.decode(pdus[-1])
    [(context_id, fragment)] = decoded.to_primitive().presentation_data_value_list
    assert context_id == 3 and fragment[0] == 0x03  # the last command fragment
    joined = b""
    for pdu in pdus:
        decoded.decode(pdu)
        [(_, fragment)] = decoded.to_primitive().presentation_data_value_list
        joined += fragment[1:]
    assert decode_command(3, joined).uid("AffectedSOPInstanceUID") == UIDS[1]


@pytest.mark.parametrize("source_ae", ["STORESCU", "CT_ROOM_1", "AE", ""])
@pytest.mark.parametrize("sop_instance", UIDS)
@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50"])
def test_file_meta_template_is_pydicoms_encoding(
    source_ae: str, sop_instance: str, syntax: str
) -> None:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(CT)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    encoded = BytesIO()
    encoded.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(encoded, meta, enforce_standard=True)  # type: ignore[arg-type]

    assert file_meta(CT, sop_instance, syntax, source_ae) == encoded.getvalue()


def test_the_implementation_identity_is_valid() -> None:
    assert UID(IMPLEMENTATION_CLASS_UID).is_valid
    assert 1 <= len(IMPLEMENTATION_VERSION_NAME) <= 16


def test_command_sets_are_read_as_pynetdicom_wrote_them() -> None:
    command = store_request(CT, UIDS[0], 42, 5)
    assert command.field == 0x0001 and command.message_id == 42 and command.has_data_set
    assert command.uid("AffectedSOPClassUID") == CT
    assert command.uid("AffectedSOPInstanceUID") == UIDS[0]
