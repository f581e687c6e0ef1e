"""Verification SCP (PS3.4 Annex A): C-ECHO answered with Success."""

from __future__ import annotations

from services.receiver.dimse import C_ECHO, Reply
from services.receiver.operations import DataSetSink, Drain, Request
from shared.log import get_logger

log = get_logger("services.receiver")

SUCCESS = 0x0000
ABSTRACT_SYNTAX = "1.2.840.10008.1.1"


class Verification:
    """Answers C-ECHO."""

    commands = frozenset({C_ECHO})

    async def perform(self, request: Request) -> Reply:
        peer = request.peer
        log.info("echo", calling_ae=peer.calling_ae, peer_address=peer.address, peer_port=peer.port)
        return Reply(SUCCESS)

    def receive(self, request: Request) -> DataSetSink:
        # A C-ECHO has no data set; one sent anyway is read and ignored.
        return Drain(Reply(SUCCESS))
