"""The receiver's command-set walk against pydicom's decoding of the same bytes.

Every request pynetdicom can encode (the DIMSE-C and DIMSE-N requests, with and without their
optional elements), then arbitrary element lists built by hypothesis: whatever pydicom reads
as a command, the walk reads the same; whatever it cannot, the walk refuses as a
:class:`CommandError`.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom.dsutils import decode

from services.receiver.dimse import NO_DATA_SET, Command, CommandError, decode_command

CT = "1.2.840.10008.5.1.4.1.1.2"
MPPS = "1.2.840.10008.3.1.2.3.3"
INSTANCE = "1.2.826.0.1.3680043.8.498.12345678901234567890"
UIDS = {
    "AffectedSOPClassUID": 0x0002,
    "RequestedSOPClassUID": 0x0003,
    "AffectedSOPInstanceUID": 0x1000,
    "RequestedSOPInstanceUID": 0x1001,
}


def by_pydicom(encoded: bytes) -> tuple[int, int, bool, dict[str, str]] | None:
    """What pydicom's decoding says of a command set: None when it is not a command."""
    try:
        command_set: Dataset = decode(BytesIO(encoded), True, True)
        field = int(command_set.CommandField)
        message_id = int(command_set.get("MessageID", 0) or 0)
        data_set_type = int(command_set.CommandDataSetType)
        uids = {}
        for keyword, element in UIDS.items():
            value = command_set.get(element)
            if value is not None and value.value:
                # A backslash splits a value in pydicom; a command's UID is one value, whose
                # text we keep as it came (it then fails as a UID where it is used).
                text = value.value if isinstance(value.value, str) else "\\".join(value.value)
                uids[keyword] = text.strip("\0 ")
    except Exception:
        return None
    return field, message_id, data_set_type != NO_DATA_SET, {k: v for k, v in uids.items() if v}


def read(command: Command) -> tuple[int, int, bool, dict[str, str]]:
    return command.field, command.message_id, command.has_data_set, command.uids


def encoded_request(primitive_class: type[Any], message_class: type[Any], **values: Any) -> bytes:
    primitive = primitive_class()
    for name, value in values.items():
        setattr(primitive, name, value)
    message = message_class()
    message.primitive_to_message(primitive)
    [command_pdu, *_] = list(message.encode_msg(1, 0))
    [(_, fragment)] = command_pdu.presentation_data_value_list
    return bytes(fragment[1:])


REQUESTS = {
    "C-STORE": (
        dimse_primitives.C_STORE,
        dimse_messages.C_STORE_RQ,
        {
            "MessageID": 7,
            "AffectedSOPClassUID": CT,
            "AffectedSOPInstanceUID": INSTANCE,
            "Priority": 2,
            "MoveOriginatorApplicationEntityTitle": "MOVER",
            "MoveOriginatorMessageID": 3,
            "DataSet": BytesIO(b"\x08\x00\x18\x00"),
        },
    ),
    "C-ECHO": (
        dimse_primitives.C_ECHO,
        dimse_messages.C_ECHO_RQ,
        {"MessageID": 65535, "AffectedSOPClassUID": "1.2.840.10008.1.1"},
    ),
    "C-FIND": (
        dimse_primitives.C_FIND,
        dimse_messages.C_FIND_RQ,
        {
            "MessageID": 2,
            "AffectedSOPClassUID": "1.2.840.10008.5.1.4.1.2.2.1",
            "Priority": 0,
            "Identifier": BytesIO(b"\x08\x00\x52\x00\x06\x00STUDY "),
        },
    ),
    "N-CREATE": (
        dimse_primitives.N_CREATE,
        dimse_messages.N_CREATE_RQ,
        {
            "MessageID": 9,
            "AffectedSOPClassUID": MPPS,
            "AffectedSOPInstanceUID": INSTANCE + "1",
            "AttributeList": BytesIO(b"\x08\x00\x18\x00"),
        },
    ),
    "N-SET": (
        dimse_primitives.N_SET,
        dimse_messages.N_SET_RQ,
        {
            "MessageID": 10,
            "RequestedSOPClassUID": MPPS,
            "RequestedSOPInstanceUID": INSTANCE,
            "ModificationList": BytesIO(b"\x08\x00\x18\x00"),
        },
    ),
    "N-ACTION": (
        dimse_primitives.N_ACTION,
        dimse_messages.N_ACTION_RQ,
        {
            "MessageID": 11,
            "RequestedSOPClassUID": "1.2.840.10008.1.20.1",
            "RequestedSOPInstanceUID": "1.2.840.10008.1.20.1.1",
            "ActionTypeID": 1,
            "ActionInformation": BytesIO(b"\x08\x00\x18\x00"),
        },
    ),
    "N-GET": (
        dimse_primitives.N_GET,
        dimse_messages.N_GET_RQ,
        {"MessageID": 12, "RequestedSOPClassUID": MPPS, "RequestedSOPInstanceUID": INSTANCE},
    ),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_request_reads_as_pydicom_reads_it(name: str) -> None:
    primitive_class, message_class, values = REQUESTS[name]
    encoded = encoded_request(primitive_class, message_class, **values)
    expected = by_pydicom(encoded)
    assert expected is not None
    assert read(decode_command(1, encoded)) == expected


def test_what_the_services_need_is_read() -> None:
    primitive_class, message_class, values = REQUESTS["C-STORE"]
    command = decode_command(5, encoded_request(primitive_class, message_class, **values))
    assert (command.context_id, command.field, command.message_id) == (5, 0x0001, 7)
    assert command.has_data_set
    assert command.uid("AffectedSOPInstanceUID") == INSTANCE
    assert command.uid("RequestedSOPInstanceUID") == ""


def element(number: int, value: bytes, group: int = 0) -> bytes:
    return struct.pack("<HHL", group, number, len(value)) + value


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        (b"", "no Command Field"),
        (element(0x0100, b"\x01\x00"), "no Command Data Set Type"),
        (element(0x0100, b"") + element(0x0800, b"\x01\x01"), "no Command Field"),
        (element(0x0100, b"\x01\x00\x00\x00") + element(0x0800, b"\x01\x01"), "not one US"),
        (element(0x0100, b"\x01\x00")[:-1], "remain"),
        (struct.pack("<HHL", 0, 0x0100, 0xFFFFFFFF), "declares 4294967295 bytes"),
        (element(0x0100, b"\x01\x00") + b"\x00\x00", "cut short"),
    ],
)
def test_malformed_command_sets_are_refused_with_the_reason(encoded: bytes, reason: str) -> None:
    assert by_pydicom(encoded) is None
    with pytest.raises(CommandError, match=reason):
        decode_command(1, encoded)


_ELEMENTS = st.sampled_from(
    [0x0000, 0x0002, 0x0003, 0x0100, 0x0110, 0x0700, 0x0800, 0x0900, 0x1000, 0x1001, 0x1030, 0x1031]
)
_VALUES = st.one_of(
    st.binary(max_size=6),
    st.sampled_from([b"\x01\x00", b"\x30\x00", b"\x01\x01", b"\x02\x01"]),
    st.text("0123456789. \x00", max_size=20).map(lambda text: text.encode("ascii")),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_ELEMENTS, _VALUES), max_size=8).map(
        lambda items: sorted(dict(items).items())
    )
)
def test_any_element_list_reads_as_pydicom_reads_it(items: list[tuple[int, bytes]]) -> None:
    encoded = b"".join(element(number, value) for number, value in items)
    expected = by_pydicom(encoded)
    if expected is None:
        with pytest.raises(CommandError):
            decode_command(1, encoded)
    else:
        assert read(decode_command(1, encoded)) == expected
