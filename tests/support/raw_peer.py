"""A DICOM peer at the PDU level, over a plain socket: what a conformance or hostile test
needs to do that no real sender does (send requests without waiting for their responses,
stop mid data set, send PDUs too long). PDUs are built with pynetdicom's encoders."""

from __future__ import annotations

import socket
import struct
from io import BytesIO
from typing import Any

from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


def associate_rq(
    sop_class: str, syntax: str = EXPLICIT_LITTLE, *, operations: int = 0, max_pdu: int = 16384
) -> bytes:
    """An A-ASSOCIATE-RQ from RAWPEER to STORE_SERVER proposing one context (ID 1)."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAWPEER"
    primitive.called_ae_title = "STORE_SERVER"
    context = build_context(sop_class, [syntax])
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.1"
    items: list[Any] = [length, implementation]
    if operations:
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked = operations
        window.maximum_number_operations_performed = 1
        items.append(window)
    primitive.user_information = items
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def store_pdus(
    sop_class: str, sop_instance: str, data_set: bytes, message_id: int, max_pdu: int = 16384
) -> list[bytes]:
    """The P-DATA-TF PDUs of a C-STORE-RQ with its data set."""
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 2
    primitive.DataSet = BytesIO(data_set)
    return message_pdus(primitive, C_STORE_RQ, max_pdu)


class RawPeer:
    """One connection to the server, sending and reading whole PDUs."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close()

    def send(self, *pdus: bytes) -> None:
        for pdu in pdus:
            self.socket.sendall(pdu)

    def pdu(self) -> tuple[int, bytes]:
        """The next PDU's type and body; (0, b"") when the server closed the connection."""
        header = self._exactly(6)
        if len(header) < 6:
            return 0, b""
        pdu_type, _, length = struct.unpack(">BBL", header)
        return pdu_type, self._exactly(length)

    def _exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.socket.recv(size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def store_status(self) -> int:
        """The Status of the next C-STORE-RSP (one PDV, as the server sends it)."""
        pdu_type, body = self.pdu()
        assert pdu_type == 0x04, (pdu_type, body)
        command = body[6:]
        at = 0
        while at < len(command):
            group, element, length = struct.unpack("<HHL", command[at : at + 8])
            if (group, element) == (0x0000, 0x0900):
                return int(struct.unpack("<H", command[at + 8 : at + 10])[0])
            at += 8 + length
        raise AssertionError("no Status in the response")

    def closed(self) -> bool:
        """Whether the server has closed the connection (after any PDUs it sent)."""
        while True:
            pdu_type, _ = self.pdu()
            if pdu_type == 0:
                return True


def message_pdus(primitive: Any, message_class: type[Any], max_pdu: int = 16384) -> list[bytes]:
    """The P-DATA-TF PDUs of any DIMSE message on context 1, its data set (if the primitive
    holds one) after it."""
    message = message_class()
    message.primitive_to_message(primitive)
    pdus = []
    for data in message.encode_msg(1, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(data)
        pdus.append(bytes(pdu.encode()))
    return pdus


def command_status(body: bytes) -> int | None:
    """The Status of a P-DATA-TF body holding one command PDV; None for a data set PDV."""
    if not body[5] & 0x01:
        return None
    status = command_numbers(body).get(0x0900)
    if status is None:
        raise AssertionError("no Status in the command")
    return status


def command_numbers(body: bytes) -> dict[int, int]:
    """The US elements of the command in a P-DATA-TF body (one PDV), by element number."""
    command = body[6:]
    found: dict[int, int] = {}
    at = 0
    while at < len(command):
        group, element, length = struct.unpack("<HHL", command[at : at + 8])
        if group == 0x0000 and length == 2:
            found[element] = int(struct.unpack("<H", command[at + 8 : at + 10])[0])
        at += 8 + length
    return found
