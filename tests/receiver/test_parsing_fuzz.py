"""Property-based fuzzing of what the listener parses from the network: A-ASSOCIATE-RQ PDUs,
command sets, and whole PDU streams on an established association. Whatever arrives, the
outcome is one of the named ones (a decoded value, a protocol error that aborts, the peer
gone), never another exception and never a hang. Bounded to a few seconds."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import CTImageStorage

from services.receiver.association import Association
from services.receiver.dimse import C_STORE, CommandError, Reply, decode_command
from services.receiver.negotiation import negotiate, read_request
from services.receiver.operations import Peer, Request
from services.receiver.upper_layer import Link, PeerGone, ProtocolError
from tests.support.raw_peer import associate_rq, store_pdus

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_RQ = associate_rq(CTImageStorage)
STORE = store_pdus(CTImageStorage, "1.2.3.4", b"\x08\x00\x18\x00\x08\x00" + b"1.2.3.4\0", 1, 64)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes changed, cut short, or with bytes added."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=16))


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(VALID_RQ)))
def test_association_requests_decode_or_are_protocol_errors(encoded: bytes) -> None:
    try:
        request = read_request(encoded)
    except ProtocolError:
        return
    try:
        agreement, accept = negotiate(
            request,
            [],
            max_pdu=16384,
            max_operations=4,
            accept_unknown=True,
            identity_response=False,
        )
    except ProtocolError:
        return  # a request that decodes but cannot be answered: aborted like a malformed one
    proposed = {c.context_id for c in request.primitive.presentation_context_definition_list}
    assert accept[0] == 0x02 and set(agreement.contexts) <= proposed


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(STORE[0][12:])))
def test_command_sets_decode_or_are_command_errors(encoded: bytes) -> None:
    try:
        command = decode_command(1, encoded)
    except CommandError:
        return
    assert isinstance(command.field, int)


class _Writer:
    """What a Link writes to: kept in memory."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def writelines(self, pdus: list[bytes]) -> None:
        for pdu in pdus:
            self.sent += pdu

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


class _Sink:
    """Counts the bytes of a data set (an in-memory storage handler)."""

    def __init__(self) -> None:
        self.received = 0

    def write(self, fragment: bytes) -> None:
        self.received += len(fragment)

    async def finish(self) -> Reply:
        return Reply(0x0000)

    def discard(self) -> None:
        self.received = 0


class _Storage:
    commands = frozenset({C_STORE})

    async def perform(self, request: Request) -> Reply:
        return Reply(0xC000, "no data set")

    def receive(self, request: Request) -> _Sink:
        return _Sink()


async def serve(stream: bytes) -> str:
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    link = Link(reader, cast(Any, _Writer()), timeout=5)
    agreement, _ = negotiate(
        read_request(VALID_RQ),
        [],
        max_pdu=16384,
        max_operations=1,
        accept_unknown=True,
        identity_response=False,
    )
    peer = Peer("RAWPEER", "STORE_SERVER", "127.0.0.1", 1)
    association = Association(link, agreement, peer, {}, _Storage(), 16384, 5)
    try:
        return await association.serve()
    except ProtocolError:
        return "protocol error"
    except PeerGone:
        return "peer gone"


RELEASE_RQ = struct.pack(">BBLL", 0x05, 0, 4, 0)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.sampled_from([*STORE, RELEASE_RQ]),
            st.builds(
                lambda pdu, garbage: pdu + garbage, st.sampled_from(STORE), st.binary(max_size=8)
            ),
            st.binary(max_size=64),
            mutated(STORE[0]),
            mutated(STORE[-1]),
        ),
        max_size=8,
    )
)
def test_pdu_streams_end_in_a_named_outcome(pdus: list[bytes]) -> None:
    outcome = asyncio.run(asyncio.wait_for(serve(b"".join(pdus)), 10))
    assert outcome in ("released", "aborted", "protocol error", "peer gone")


def test_a_well_formed_stream_is_served_and_released() -> None:
    assert asyncio.run(serve(b"".join(STORE) + RELEASE_RQ)) == "released"
