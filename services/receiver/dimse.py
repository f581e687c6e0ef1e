"""DIMSE messages on the wire: command sets decoded, responses encoded (PS3.7 6, 9, 10).

Every response but one goes through pynetdicom's message classes. The exception is the
C-STORE-RSP with a Success status, sent once per instance: pynetdicom's chain (primitive,
``C_STORE_RSP``, ``encode_msg``, ``P_DATA_TF``) costs about 300 us an instance, and the same
bytes come from a template in about 2 us. ``tests/receiver/test_encodings.py`` holds the
template to pynetdicom's encoding, byte for byte.

Command sets are read by a walk over their elements (Implicit VR Little Endian, group 0000:
tag, length, value) that keeps only the few values the services use: pydicom's decoding of the
same bytes into a Dataset, then its look-ups, cost about 0.3 ms a request, a tenth of the
embedded server's time per instance. The tests hold the walk to pydicom's decoding of every
command pynetdicom encodes, and fuzz it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom.pdu import P_DATA_TF

C_STORE = 0x0001
C_GET = 0x0010
C_FIND = 0x0020
C_MOVE = 0x0021
C_ECHO = 0x0030
C_CANCEL = 0x0FFF
N_EVENT_REPORT = 0x0100
N_SET = 0x0120
N_ACTION = 0x0130
N_CREATE = 0x0140
NO_DATA_SET = 0x0101
LONGEST_COMMAND = 64 * 1024  # a command set is a few hundred bytes; this bounds a hostile one

# The request's command field: the primitive and the response message pynetdicom encodes.
RESPONSES: dict[int, tuple[type[Any], type[dimse_messages.DIMSEMessage]]] = {
    C_STORE: (dimse_primitives.C_STORE, dimse_messages.C_STORE_RSP),
    C_FIND: (dimse_primitives.C_FIND, dimse_messages.C_FIND_RSP),
    C_MOVE: (dimse_primitives.C_MOVE, dimse_messages.C_MOVE_RSP),
    C_GET: (dimse_primitives.C_GET, dimse_messages.C_GET_RSP),
    C_ECHO: (dimse_primitives.C_ECHO, dimse_messages.C_ECHO_RSP),
    N_SET: (dimse_primitives.N_SET, dimse_messages.N_SET_RSP),
    N_ACTION: (dimse_primitives.N_ACTION, dimse_messages.N_ACTION_RSP),
    N_CREATE: (dimse_primitives.N_CREATE, dimse_messages.N_CREATE_RSP),
}


class CommandError(ValueError):
    """A command set that cannot be decoded, or lacks what every request carries."""


# The command set's elements the services read (PS3.7 E.1), by element number in group 0000.
_UID_ELEMENTS = {
    0x0002: "AffectedSOPClassUID",
    0x0003: "RequestedSOPClassUID",
    0x1000: "AffectedSOPInstanceUID",
    0x1001: "RequestedSOPInstanceUID",
}
_COMMAND_FIELD, _MESSAGE_ID, _RESPONDING_TO, _DATA_SET_TYPE = 0x0100, 0x0110, 0x0120, 0x0800
_STATUS, _ACTION_TYPE = 0x0900, 0x1008
_MOVE_DESTINATION = 0x0600
_REQUIRED_NUMBERS = frozenset({_COMMAND_FIELD, _MESSAGE_ID, _DATA_SET_TYPE})
_NUMBERS = frozenset({_RESPONDING_TO, _STATUS, _ACTION_TYPE})
_HEADER = struct.Struct("<HHL")
_US = struct.Struct("<H")


@dataclass(frozen=True)
class Command:
    """A request's command set, as the services need it."""

    context_id: int
    field: int
    message_id: int
    has_data_set: bool
    uids: dict[str, str]
    responding_to: int = 0  # Message ID Being Responded To: what a C-CANCEL-RQ cancels
    move_destination: str = ""  # a C-MOVE-RQ's Move Destination (AE title)
    status: int | None = None  # a response's
    action_type: int | None = None  # an N-ACTION-RQ's Action Type ID

    @property
    def is_response(self) -> bool:
        return bool(self.field & 0x8000)

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
    # An encoded data set: the identifier of a pending C-FIND response, the attribute list
    # of the N- responses that carry one.
    attributes: bytes = b""
    # A retrieval's sub-operations: remaining (None: not stated), completed, failed, warning.
    counts: tuple[int | None, int, int, int] | None = None


def decode_command(context_id: int, encoded: bytes) -> Command:
    """A command set (always Implicit VR Little Endian, PS3.7 6.3.1) as a :class:`Command`.

    Command Field and Command Data Set Type must be there, each one US value; Message ID is 0
    when absent or empty. An element that runs past the end, or an undefined length (a command
    set holds no sequences), makes the command set undecodable.
    """
    numbers: dict[int, int | None] = {}
    uids: dict[str, str] = {}
    destination = ""
    view = memoryview(encoded)
    at, end = 0, len(encoded)
    while at < end:
        if end - at < _HEADER.size:
            raise CommandError(f"undecodable command set: element header cut short at {at}")
        group, element, length = _HEADER.unpack_from(view, at)
        at += _HEADER.size
        if length > end - at:  # also the undefined length, 0xFFFFFFFF
            raise CommandError(
                f"undecodable command set: ({group:04X},{element:04X}) declares {length} bytes, "
                f"{end - at} remain"
            )
        if group == 0x0000:
            if element in _REQUIRED_NUMBERS:
                numbers[element] = _unsigned_short(element, view[at : at + length])
            elif element in _NUMBERS and length == _US.size:  # only read, never required
                numbers[element] = int(_US.unpack(view[at : at + length])[0])
            elif element == _MOVE_DESTINATION and length:
                destination = bytes(view[at : at + length]).decode("latin-1").strip("\0 ")
            elif element in _UID_ELEMENTS and length:
                text = bytes(view[at : at + length]).decode("latin-1").strip("\0 ").strip()
                if text:
                    uids[_UID_ELEMENTS[element]] = text
        at += length
    field_value = numbers.get(_COMMAND_FIELD)
    data_set_type = numbers.get(_DATA_SET_TYPE)
    if field_value is None or data_set_type is None:
        missing = "Command Field" if field_value is None else "Command Data Set Type"
        raise CommandError(f"undecodable command set: no {missing} (US) value")
    message_id = numbers.get(_MESSAGE_ID) or 0
    return Command(
        context_id,
        field_value,
        message_id,
        data_set_type != NO_DATA_SET,
        uids,
        numbers.get(_RESPONDING_TO) or 0,
        destination,
        numbers.get(_STATUS),
        numbers.get(_ACTION_TYPE),
    )


def _unsigned_short(element: int, value: memoryview) -> int | None:
    """A US element's one value; None when it is empty."""
    if not value:
        return None
    if len(value) != _US.size:
        raise CommandError(
            f"undecodable command set: (0000,{element:04X}) is {len(value)} bytes, not one US"
        )
    return int(_US.unpack(value)[0])


def _pdu(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV (PS3.8 9.3.5)."""
    pdv = struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment
    return struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv


def _uid(value: str) -> bytes:
    encoded = value.encode("ascii", "replace")
    return encoded + b"\0" if len(encoded) % 2 else encoded


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def store_request(
    context_id: int,
    message_id: int,
    sop_class: str,
    sop_instance: str,
    peer_max_pdu: int,
    origin: tuple[str, int] | None = None,
) -> list[bytes]:
    """The PDUs of a C-STORE-RQ's command set (its data set follows in :func:`data_pdu`);
    ``origin``: the C-MOVE or C-GET it is a sub-operation of (AE title, Message ID)."""
    primitive = dimse_primitives.C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 0x0002  # low: a retrieval gives way to what modalities send
    if origin is not None:
        primitive.MoveOriginatorApplicationEntityTitle, primitive.MoveOriginatorMessageID = origin
    return _request_command(primitive, dimse_messages.C_STORE_RQ, context_id, peer_max_pdu)


def event_report_request(
    context_id: int,
    message_id: int,
    sop_class: str,
    sop_instance: str,
    event_type: int,
    peer_max_pdu: int,
) -> list[bytes]:
    """The PDUs of an N-EVENT-REPORT-RQ's command set (its event information follows)."""
    primitive = dimse_primitives.N_EVENT_REPORT()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.EventTypeID = event_type
    message_class = dimse_messages.N_EVENT_REPORT_RQ
    return _request_command(primitive, message_class, context_id, peer_max_pdu)


def _request_command(
    primitive: Any, message_class: type[Any], context_id: int, peer_max_pdu: int
) -> list[bytes]:
    """A request's command set, saying a data set follows."""
    message = message_class()
    message.primitive_to_message(primitive)
    message.command_set.CommandDataSetType = 0x0001
    largest = peer_max_pdu if peer_max_pdu == 0 else max(peer_max_pdu, 8)
    pdus = []
    for data in message.encode_msg(context_id, largest):
        pdu = P_DATA_TF()
        pdu.from_primitive(data)
        pdus.append(pdu.encode())
    return pdus


def data_pdu(context_id: int, fragment: bytes, last: bool) -> bytes:
    """One P-DATA-TF PDU carrying a fragment of a data set."""
    return _pdu(context_id, 0x02 if last else 0x00, fragment)


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
    if reply.counts is not None:
        remaining, completed, failed, warning = reply.counts
        if remaining is not None:
            primitive.NumberOfRemainingSuboperations = remaining
        primitive.NumberOfCompletedSuboperations = completed
        primitive.NumberOfFailedSuboperations = failed
        primitive.NumberOfWarningSuboperations = warning
    if reply.attributes and hasattr(primitive, "Identifier"):
        primitive.Identifier = BytesIO(reply.attributes)
    elif reply.attributes:
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
