"""DIMSE messages on the wire: command sets decoded, responses encoded (PS3.7 6, 9, 10).

Decoding and every response but one go through pynetdicom's message classes. The exception is
the C-STORE-RSP with a Success status, sent once per instance: pynetdicom's chain (primitive,
``C_STORE_RSP``, ``encode_msg``, ``P_DATA_TF``) costs about 300 us an instance, and the same
bytes come from a template in about 2 us. ``tests/receiver/test_encodings.py`` holds the
template to pynetdicom's encoding, byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom.dsutils import decode
from pynetdicom.pdu import P_DATA_TF

C_STORE = 0x0001
C_ECHO = 0x0030
N_SET = 0x0120
N_CREATE = 0x0140
NO_DATA_SET = 0x0101
LONGEST_COMMAND = 64 * 1024  # a command set is a few hundred bytes; this bounds a hostile one

# The request's command field: the primitive and the response message pynetdicom encodes.
RESPONSES: dict[int, tuple[type[Any], type[dimse_messages.DIMSEMessage]]] = {
    C_STORE: (dimse_primitives.C_STORE, dimse_messages.C_STORE_RSP),
    C_ECHO: (dimse_primitives.C_ECHO, dimse_messages.C_ECHO_RSP),
    N_SET: (dimse_primitives.N_SET, dimse_messages.N_SET_RSP),
    N_CREATE: (dimse_primitives.N_CREATE, dimse_messages.N_CREATE_RSP),
}


class CommandError(ValueError):
    """A command set that cannot be decoded, or lacks what every request carries."""


# The UID elements of command sets (PS3.7 E.1), read once per request by tag: pydicom's
# look-up by keyword costs more than the rest of the request's decoding.
_UID_TAGS = {
    "AffectedSOPClassUID": 0x00000002,
    "RequestedSOPClassUID": 0x00000003,
    "AffectedSOPInstanceUID": 0x00001000,
    "RequestedSOPInstanceUID": 0x00001001,
}


@dataclass(frozen=True)
class Command:
    """A request's command set, as the services need it."""

    context_id: int
    field: int
    message_id: int
    has_data_set: bool
    command_set: Dataset
    uids: dict[str, str]

    def uid(self, keyword: str) -> str:
        """A UID element of the command set, '' when absent (values arrive NUL-padded)."""
        return self.uids.get(keyword, "")


@dataclass(frozen=True)
class Reply:
    """What a service answers: a status and the response's optional elements."""

    status: int
    error_comment: str = ""
    offending: list[int] = field(default_factory=list)
    affected_sop_instance_uid: str = ""
    attributes: bytes = b""  # an encoded data set, for the N- responses that carry one


def decode_command(context_id: int, encoded: bytes) -> Command:
    """A command set (always Implicit VR Little Endian, PS3.7 6.3.1) as a :class:`Command`."""
    try:
        command_set = decode(BytesIO(encoded), True, True)
        field_value = int(command_set.CommandField)
        message_id = int(command_set.get("MessageID", 0) or 0)
        data_set_type = int(command_set.CommandDataSetType)
        uids = {}
        for keyword, tag in _UID_TAGS.items():
            element = command_set.get(tag)
            if element is not None and element.value:
                uids[keyword] = str(element.value).strip("\0 ")
    # pydicom reports a malformed encoding with many exception types; all mean the same here.
    except Exception as error:
        raise CommandError(f"undecodable command set: {type(error).__name__}: {error}") from None
    return Command(
        context_id, field_value, message_id, data_set_type != NO_DATA_SET, command_set, uids
    )


def _pdu(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV (PS3.8 9.3.5)."""
    pdv = struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment
    return struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv


def _uid(value: str) -> bytes:
    encoded = value.encode("ascii", "replace")
    return encoded + b"\0" if len(encoded) % 2 else encoded


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def store_success(command: Command, peer_max_pdu: int) -> list[bytes]:
    """The PDUs of a Success C-STORE-RSP to ``command``."""
    sop_class = command.uid("AffectedSOPClassUID")
    sop_instance = command.uid("AffectedSOPInstanceUID")
    body = b"".join(
        (
            _element(0x0002, _uid(sop_class)),
            _element(0x0100, b"\x01\x80"),
            _element(0x0120, struct.pack("<H", command.message_id & 0xFFFF)),
            _element(0x0800, struct.pack("<H", NO_DATA_SET)),
            _element(0x0900, b"\0\0"),
            _element(0x1000, _uid(sop_instance)),
        )
    )
    encoded = _element(0x0000, struct.pack("<L", len(body))) + body
    if not sop_class or not sop_instance or 0 < peer_max_pdu < len(encoded) + 6:
        return response(command, Reply(0x0000), peer_max_pdu)
    return [_pdu(command.context_id, 0x03, encoded)]


def response(command: Command, reply: Reply, peer_max_pdu: int) -> list[bytes]:
    """The PDUs of the response to ``command``, fragmented to the peer's maximum PDU length."""
    primitive_class, message_class = RESPONSES[command.field]
    primitive = primitive_class()
    primitive.MessageIDBeingRespondedTo = command.message_id
    sop_class = command.uid("AffectedSOPClassUID") or command.uid("RequestedSOPClassUID")
    if sop_class:
        primitive.AffectedSOPClassUID = sop_class
    instance = reply.affected_sop_instance_uid or (
        command.uid("AffectedSOPInstanceUID") or command.uid("RequestedSOPInstanceUID")
    )
    if instance and hasattr(primitive, "AffectedSOPInstanceUID"):
        primitive.AffectedSOPInstanceUID = instance
    primitive.Status = reply.status
    if reply.error_comment:
        primitive.ErrorComment = reply.error_comment
    if reply.offending and hasattr(primitive, "OffendingElement"):
        primitive.OffendingElement = reply.offending
    if reply.attributes:
        primitive.AttributeList = BytesIO(reply.attributes)
    message = message_class()
    message.primitive_to_message(primitive)
    # pynetdicom cannot cut a PDV shorter than one byte of payload.
    largest = peer_max_pdu if peer_max_pdu == 0 else max(peer_max_pdu, 8)
    pdus = []
    for data in message.encode_msg(command.context_id, largest):
        pdu = P_DATA_TF()
        pdu.from_primitive(data)
        pdus.append(pdu.encode())
    return pdus
