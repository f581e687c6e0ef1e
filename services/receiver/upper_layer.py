"""The DICOM Upper Layer on one connection (PS3.8 9): PDUs read and written on asyncio streams.

A PDU is never read whole: :meth:`Link.header` reads its 6-byte header, then the caller reads
the body in pieces it bounds itself (a PDV's header, a fragment in chunks), so a peer that
declares 4 GiB costs what it actually sends and no more. Every read runs under a deadline
(the ARTIM timer while the association is being requested, the network timeout afterwards);
a peer that misses it is dropped, unless we owe it an answer (an operation of ours is still
running: its silence is then ours). An idle connection is one suspended read: no thread.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07
KNOWN_PDUS = frozenset(range(0x01, 0x08))

# A-ABORT sources and provider reasons (PS3.8 9.3.8)
SERVICE_USER = 0x00
SERVICE_PROVIDER = 0x02
UNRECOGNIZED_PDU = 0x01
UNEXPECTED_PDU = 0x02
INVALID_PARAMETER = 0x06

RELEASE_RP = struct.pack(">BBLL", A_RELEASE_RP, 0, 4, 0)
CHUNK = 256 * 1024  # the most read from the socket at once


class PeerGone(ConnectionError):
    """The peer closed, reset or timed out the connection, or aborted the association."""


class ProtocolError(ValueError):
    """The peer broke the protocol; the association is aborted with ``reason``."""

    def __init__(self, message: str, reason: int = INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.reason = reason


def abort_pdu(source: int, reason: int = 0) -> bytes:
    """An A-ABORT PDU; the reason is only significant from the service provider."""
    return struct.pack(">BBLBBBB", A_ABORT, 0, 4, 0, 0, source, reason)


class Link:
    """A connection's PDU stream, with a deadline on every read."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout  # the network timeout; the ARTIM timer is the caller's
        self.closed = False
        self.working: Callable[[], bool] = lambda: False  # an answer of ours is under way

    async def header(self) -> tuple[int, int]:
        """The next PDU's type and length."""
        pdu_type, _, length = struct.unpack(">BBL", await self.read(6))
        if pdu_type not in KNOWN_PDUS:
            raise ProtocolError(f"unrecognized PDU type 0x{pdu_type:02X}", UNRECOGNIZED_PDU)
        return pdu_type, length

    async def read(self, size: int) -> bytes:
        while True:
            try:
                # readexactly takes nothing from the buffer until it has it all, so a read
                # cut off by its deadline loses nothing when it is tried again.
                async with asyncio.timeout(self.timeout):
                    return await self.reader.readexactly(size)
            except asyncio.IncompleteReadError:
                raise PeerGone("the peer closed the connection") from None
            except TimeoutError:
                if not self.working():
                    raise PeerGone(f"nothing received for {self.timeout:g} s") from None
            except OSError as error:
                raise PeerGone(f"connection lost: {error}") from None

    async def pieces(self, size: int) -> AsyncIterator[bytes]:
        """Yield ``size`` bytes as they arrive, in pieces of at most :data:`CHUNK`."""
        while size > 0:
            piece = await self.read(min(size, CHUNK))
            size -= len(piece)
            yield piece

    async def skip(self, size: int) -> None:
        async for _ in self.pieces(size):
            pass

    async def send(self, *pdus: bytes) -> None:
        if self.closed:
            raise PeerGone("the connection is closed")
        try:
            self.writer.writelines(pdus)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except TimeoutError:
            raise PeerGone(f"the peer took nothing for {self.timeout:g} s") from None
        except OSError as error:
            raise PeerGone(f"connection lost: {error}") from None

    async def abort(self, source: int, reason: int = 0) -> None:
        """Send an A-ABORT (best effort) and close."""
        if not self.closed:
            try:
                self.writer.write(abort_pdu(source, reason))
                async with asyncio.timeout(1):
                    await self.writer.drain()
            except (OSError, TimeoutError):
                pass
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            pass
