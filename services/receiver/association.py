"""An established association: P-DATA read fragment by fragment, requests dispatched by
abstract syntax, responses sent as they are ready, release and abort (PS3.8 9.3, 9.3.5).

Command fragments are gathered (a command set is small, and bounded); data set fragments go
straight to the request's :class:`~services.receiver.operations.DataSetSink` as they are read.
The PDU length we advertised is enforced on receipt: a longer P-DATA-TF aborts the
association. With an asynchronous operations window above one, the next request is read while
earlier ones are being committed, up to the window; otherwise each is answered before the next
is read, except a query or retrieval, which is answered while reading on so that the peer's
C-CANCEL-RQ is heard. We never request release ourselves (the acceptor waits for the
requestor), so a release collision cannot arise; an A-RELEASE-RP from the peer is an
unexpected PDU.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from pydicom.uid import UID

from services.receiver import dimse, upper_layer
from services.receiver.audit import AssociationAudit
from services.receiver.dimse import Command, CommandError, Reply
from services.receiver.negotiation import Agreement
from services.receiver.operations import DataSetSink, Handler, Peer, Progress, Request
from services.receiver.upper_layer import (
    SERVICE_PROVIDER,
    SERVICE_USER,
    UNEXPECTED_PDU,
    Link,
    PeerGone,
    ProtocolError,
)
from shared.log import get_logger

log = get_logger("services.receiver")

PROCESSING_FAILURE = 0x0110
# Requests answered in steps, which the peer may cancel while they run.
CANCELLABLE = frozenset({dimse.C_FIND, dimse.C_MOVE, dimse.C_GET})
UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


class Association:
    """Serves one association until it is released or aborted."""

    def __init__(
        self,
        link: Link,
        agreement: Agreement,
        peer: Peer,
        handlers: dict[str, Handler],
        storage: Handler,
        max_pdu: int,
        dimse_timeout: float,
        audit: AssociationAudit | None = None,
    ) -> None:
        self.link = link
        self.peer = peer
        self.audit = audit
        self._agreement = agreement
        self._handlers = handlers
        self._storage = storage
        self._max_pdu = max_pdu
        self._idle_timeout = link.timeout
        self._dimse_timeout = dimse_timeout
        self._command = bytearray()
        self._pending: tuple[Request, Handler, DataSetSink] | None = None
        self._window = asyncio.Semaphore(agreement.operations)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._cancellable: dict[int, Progress] = {}  # by Message ID
        self._awaiting: dict[int, asyncio.Future[Command]] = {}  # our requests, by Message ID
        self._next_message_id = 0
        self._ended = False
        link.working = lambda: bool(self._in_flight)
        self._started = time.monotonic()
        self.instances = 0
        self.failures = 0
        self.bytes = 0

    def summary(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "failures": self.failures,
            "bytes": self.bytes,
            "seconds": round(time.monotonic() - self._started, 3),
        }

    async def serve(self) -> str:
        """Serve until the end; how it ended: ``released`` or ``aborted``."""
        try:
            return await self._serve()
        finally:
            if self._pending is not None:
                self._pending[2].discard()  # a data set cut off: nothing kept, nothing sent on
                self._pending = None
            self._ended = True
            for waiting in self._awaiting.values():  # our requests: no answer will come
                if not waiting.done():
                    waiting.set_exception(PeerGone("the association ended"))
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _serve(self) -> str:
        link = self.link
        while True:
            # Silent between requests: the network timeout; inside one: the DIMSE timeout.
            in_message = self._pending is not None or bool(self._command)
            link.timeout = self._dimse_timeout if in_message else self._idle_timeout
            pdu_type, length = await link.header()
            if pdu_type == upper_layer.P_DATA_TF:
                if self._max_pdu and length > self._max_pdu:
                    raise ProtocolError(
                        f"P-DATA-TF of {length} bytes, above the {self._max_pdu} we advertised"
                    )
                await self._p_data(length)
            elif pdu_type == upper_layer.A_RELEASE_RQ:
                if length != 4:
                    raise ProtocolError(f"A-RELEASE-RQ of {length} bytes")
                await link.read(length)
                if self._in_flight:
                    await asyncio.gather(*self._in_flight, return_exceptions=True)
                await link.send(upper_layer.RELEASE_RP)
                return "released"
            elif pdu_type == upper_layer.A_ABORT:
                if length <= 16:
                    await link.read(length)
                return "aborted"
            else:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}", UNEXPECTED_PDU)

    async def _p_data(self, length: int) -> None:
        link = self.link
        remaining = length
        while remaining:
            if remaining < 6:
                raise ProtocolError("P-DATA-TF ends inside a PDV item header")
            item_length, context_id, control = struct.unpack(">LBB", await link.read(6))
            if item_length < 2 or item_length + 4 > remaining:
                raise ProtocolError(f"PDV item of {item_length} bytes in {remaining}")
            remaining -= item_length + 4
            size = item_length - 2
            if context_id not in self._agreement.contexts:
                raise ProtocolError(f"PDV on presentation context {context_id}, not accepted")
            if control & 0x01:
                if self._pending is not None:
                    raise ProtocolError("a command arrived inside a data set", UNEXPECTED_PDU)
                if len(self._command) + size > dimse.LONGEST_COMMAND:
                    raise ProtocolError("command set longer than 64 KiB")
                self._command += await link.read(size)
                if control & 0x02:
                    await self._command_complete(context_id)
            else:
                if self._pending is None or self._pending[0].command.context_id != context_id:
                    raise ProtocolError("data set fragment without its command", UNEXPECTED_PDU)
                sink = self._pending[2]
                async for piece in link.pieces(size):
                    sink.write(piece)
                self.bytes += size
                if control & 0x02:
                    request, _, sink = self._pending
                    self._pending = None
                    await self._dispatch(request, sink.finish())

    def _request(self, command: Command) -> tuple[Request, Handler]:
        context = self._agreement.contexts[command.context_id]
        abstract = str(context.abstract_syntax)
        handler = self._handlers.get(abstract, self._storage)
        if command.field not in handler.commands:
            raise ProtocolError(
                f"command 0x{command.field:04X} on {abstract}, which does not take it",
                UNEXPECTED_PDU,
            )
        progress = Progress(lambda reply: self._send_reply(command, reply), self)
        syntax = str(context.transfer_syntax[0])
        request = Request(command, abstract, syntax, self.peer, progress, self.audit)
        return request, handler

    async def _command_complete(self, context_id: int) -> None:
        encoded = bytes(self._command)
        self._command.clear()
        try:
            command = dimse.decode_command(context_id, encoded)
        except CommandError as error:
            raise ProtocolError(str(error)) from None
        if command.field == dimse.C_CANCEL:
            self._cancel(command)
            return
        if command.is_response:
            self._responded(command)
            return
        request, handler = self._request(command)
        if command.has_data_set:
            self._pending = (request, handler, handler.receive(request))
        else:
            await self._dispatch(request, handler.perform(request))

    def _responded(self, command: Command) -> None:
        waiting = self._awaiting.pop(command.responding_to, None)
        if waiting is None or command.has_data_set:
            raise ProtocolError(
                f"a response to message {command.responding_to}, which we did not send",
                UNEXPECTED_PDU,
            )
        if not waiting.done():
            waiting.set_result(command)

    def context_for(self, sop_class: str, transfer_syntax: str) -> tuple[int, str] | None:
        agreement = self._agreement
        if sop_class not in agreement.peer_scp_classes:
            return None
        offered = {
            str(context.transfer_syntax[0]): context_id
            for context_id, context in agreement.contexts.items()
            if str(context.abstract_syntax) == sop_class
        }
        for syntax in (transfer_syntax, *UNCOMPRESSED):
            if syntax in offered and (syntax == transfer_syntax or not UID(syntax).is_compressed):
                return offered[syntax], syntax
        return None

    @property
    def open(self) -> bool:
        """Whether requests of ours can still be sent on this association."""
        return not self._ended and not self.link.closed

    async def store(
        self,
        context_id: int,
        sop_class: str,
        sop_instance: str,
        fragments: AsyncIterator[bytes],
        origin: tuple[str, int],
    ) -> int:
        message_id = self._message_id()
        command = dimse.store_request(
            context_id, message_id, sop_class, sop_instance, self._agreement.peer_max_pdu, origin
        )
        return await self._ask(message_id, context_id, command, fragments)

    async def event_report(
        self, context_id: int, sop_class: str, sop_instance: str, event_type: int, data: bytes
    ) -> int:
        message_id = self._message_id()
        command = dimse.event_report_request(
            context_id,
            message_id,
            sop_class,
            sop_instance,
            event_type,
            self._agreement.peer_max_pdu,
        )
        return await self._ask(message_id, context_id, command, _once(data))

    def _message_id(self) -> int:
        self._next_message_id = self._next_message_id % 0xFFFF + 1
        return self._next_message_id

    async def _ask(
        self, message_id: int, context_id: int, command: list[bytes], data: AsyncIterator[bytes]
    ) -> int:
        """Send a request of ours and its data set; the peer's status."""
        answered: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        self._awaiting[message_id] = answered
        peer_max = self._agreement.peer_max_pdu
        try:
            await self.link.send(*command)
            # Each PDU within the peer's maximum length: a PDV's header takes 6 bytes of it.
            largest = peer_max - 6 if peer_max else 1024 * 1024
            held = b""
            async for fragment in data:
                held += fragment
                while len(held) > largest:
                    await self.link.send(dimse.data_pdu(context_id, held[:largest], last=False))
                    held = held[largest:]
            await self.link.send(dimse.data_pdu(context_id, held, last=True))
            async with asyncio.timeout(self._dimse_timeout):
                response = await answered
        finally:
            self._awaiting.pop(message_id, None)
        return response.status if response.status is not None else 0xC000

    def _cancel(self, command: Command) -> None:
        if command.has_data_set:
            raise ProtocolError("a C-CANCEL-RQ with a data set", UNEXPECTED_PDU)
        progress = self._cancellable.get(command.responding_to)
        log.info(
            "request.cancel",
            message_id=command.responding_to,
            running=progress is not None,
            **self.log_fields(),
        )
        if progress is not None:  # else it has already ended: nothing to do (PS3.7 9.3.2.3)
            progress.cancel()

    async def _dispatch(self, request: Request, answer: Any) -> None:
        """Answer now, or (within the asynchronous operations window, or for a request the peer
        may cancel) while reading on."""
        await self._window.acquire()
        command = request.command
        cancellable = command.field in CANCELLABLE
        if self._agreement.operations == 1 and not cancellable:
            await self._answer(request, answer)
            return
        task = asyncio.create_task(self._answer(request, answer))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        if cancellable:
            self._cancellable[command.message_id] = request.progress
            task.add_done_callback(lambda _: self._cancellable.pop(command.message_id, None))

    async def _answer(self, request: Request, answer: Any) -> None:
        command = request.command
        try:
            try:
                reply: Reply = await answer
            except Exception:
                log.exception("request.failed", command=f"0x{command.field:04X}")
                reply = Reply(0xA700 if command.field == dimse.C_STORE else PROCESSING_FAILURE)
            peer_max = self._agreement.peer_max_pdu
            if command.field == dimse.C_STORE:
                self.instances += reply.status == 0
                self.failures += reply.status != 0
                if reply == Reply(0):
                    await self.link.send(*dimse.store_success(command, peer_max))
                    return
            await self._send_reply(command, reply)
        except PeerGone:
            pass  # the association is over; the reading side notices and reports it
        finally:
            self._window.release()

    async def _send_reply(self, command: Command, reply: Reply) -> None:
        await self.link.send(*dimse.response(command, reply, self._agreement.peer_max_pdu))

    async def abort(self, reason: str) -> None:
        """Abort from our side (shutdown past its grace)."""
        log.warning("association.aborting", reason=reason, **self.log_fields())
        await self.link.abort(SERVICE_USER)

    async def provider_abort(self, error: ProtocolError) -> None:
        await self.link.abort(SERVICE_PROVIDER, error.reason)

    def log_fields(self) -> dict[str, Any]:
        return {
            "calling_ae": self.peer.calling_ae,
            "peer_address": self.peer.address,
            "peer_port": self.peer.port,
        }


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
