"""What a DIMSE service handler is to the listener: the request it gets, the reply it gives.

The association dispatches each request to the handler of its presentation context's abstract
syntax. A request without a data set is :meth:`Handler.perform`-ed; one with a data set gets a
:class:`DataSetSink` from :meth:`Handler.receive`, which takes the data set's fragments as they
arrive and answers when the last one is in. A request answered in several steps (C-FIND's
matches) sends its pending replies through the request's :class:`Progress` before returning
the final one, and sees there whether the peer cancelled it (C-CANCEL-RQ).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.receiver.audit import AssociationAudit
from services.receiver.dimse import Command, Reply


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of an association."""

    calling_ae: str
    called_ae: str
    address: str
    port: int


class SubOperations(Protocol):
    """Requests we send the peer on its own association: C-GET's C-STORE sub-operations,
    storage commitment's N-EVENT-REPORT."""

    @property
    def open(self) -> bool:
        """Whether the association is still there to send on."""
        ...

    def context_for(self, sop_class: str, transfer_syntax: str) -> tuple[int, str] | None:
        """An accepted context on which the peer takes the SCP role for ``sop_class``, in
        ``transfer_syntax`` if there is one, else uncompressed; (context ID, its syntax)."""
        ...

    async def store(
        self,
        context_id: int,
        sop_class: str,
        sop_instance: str,
        fragments: AsyncIterator[bytes],
        origin: tuple[str, int],
    ) -> int:
        """Send a C-STORE-RQ with the data set ``fragments`` give; the peer's status."""
        ...

    async def event_report(
        self, context_id: int, sop_class: str, sop_instance: str, event_type: int, data: bytes
    ) -> int:
        """Send an N-EVENT-REPORT-RQ with its event information; the peer's status."""
        ...


class Progress:
    """A request's way to the peer before its final reply."""

    def __init__(
        self,
        send: Callable[[Reply], Awaitable[None]] | None = None,
        sub_operations: SubOperations | None = None,
    ) -> None:
        self._send = send
        self.sub_operations = sub_operations
        self.cancelled = False

    async def pending(self, reply: Reply) -> None:
        """Send a pending reply (status 0xFF00 or 0xFF01) now."""
        if self._send is None:
            raise RuntimeError("this request cannot send pending replies")
        await self._send(reply)

    def cancel(self) -> None:
        """The peer sent a C-CANCEL-RQ for the request: it ends at its next step."""
        self.cancelled = True


@dataclass(frozen=True)
class Request:
    """One DIMSE request, with the presentation context and association it came on."""

    command: Command
    abstract_syntax: str
    transfer_syntax: str
    peer: Peer
    progress: Progress = field(default_factory=Progress)
    audit: AssociationAudit | None = None  # its association's part of the audit trail


class DataSetSink(Protocol):
    """Where a request's data set goes, fragment by fragment."""

    def write(self, fragment: bytes) -> None:
        """Take the next fragment; never raises (a failure is kept for :meth:`finish`)."""
        ...

    async def finish(self) -> Reply:
        """The last fragment is in: act on the data set and answer."""
        ...

    def discard(self) -> None:
        """The association ended before the data set did: keep nothing of it."""
        ...


class Handler(Protocol):
    """A DIMSE service: the commands it answers (by command field) and how."""

    commands: frozenset[int]

    async def perform(self, request: Request) -> Reply:
        """Answer a request that has no data set."""
        ...

    def receive(self, request: Request) -> DataSetSink:
        """Start taking the data set of a request."""
        ...


class Drain:
    """A data set nobody needs (one sent with a request that takes none): read to nowhere,
    then the given reply."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    def write(self, fragment: bytes) -> None:
        pass

    async def finish(self) -> Reply:
        return self._reply

    def discard(self) -> None:
        pass


class Gathered:
    """A request's data set gathered whole (a query's identifier: small, and bounded here),
    then handed to ``answer``."""

    def __init__(
        self,
        request: Request,
        answer: Callable[[Request, bytes], Awaitable[Reply]],
        too_long: Reply,
        limit: int = 1024 * 1024,
    ) -> None:
        self._request = request
        self._answer = answer
        self._too_long = too_long
        self._limit = limit
        self._data = bytearray()
        self._over = False

    def write(self, fragment: bytes) -> None:
        if self._over or len(self._data) + len(fragment) > self._limit:
            self._over = True
            self._data.clear()
        else:
            self._data += fragment

    async def finish(self) -> Reply:
        if self._over:
            return self._too_long
        return await self._answer(self._request, bytes(self._data))

    def discard(self) -> None:
        self._data.clear()
