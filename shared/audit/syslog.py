"""Audit messages to a syslog collector, as IHE ATNA's Record Audit Event (ITI-20) sends
them: RFC 5424 messages whose MSG is the XML audit message, over UDP (RFC 5426, a datagram
each) or over TCP or TLS (RFC 6587 / RFC 5425, octet-counted on a connection kept open).

A sender raises :class:`SyslogError` when the collector cannot be reached or a connection
breaks: the caller keeps its messages and sends them again later. Syslog has no
acknowledgement, so a message written just before a collector closes its end may be lost;
a copy that must be complete resends from its own position.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.log import get_logger

log = get_logger(__name__)

# RFC 5424 6.4: an MSG encoded in UTF-8 "MUST start with the Unicode byte order mask". IHE's
# collectors accept it (dcm4che's logger sends it by default), so it is sent unless a
# collector that chokes on it is configured with ``bom=False``.
BOM = b"\xef\xbb\xbf"
UDP_MAX = 65_507  # the most an IPv4 UDP datagram carries (RFC 5426 3.2: no fragmentation)
NIL = "-"
# RFC 5424 6.2: each header field's longest value.
HOSTNAME_MAX, APP_NAME_MAX, PROCID_MAX, MSGID_MAX = 255, 48, 128, 32


class SyslogError(Exception):
    """The collector took no message: unreachable, refused, closed or too slow."""


def syslog_message(
    xml: str,
    *,
    at: datetime,
    hostname: str,
    app_name: str,
    procid: str,
    msgid: str = "IHE+RFC-3881",
    severity: int = 5,
    facility: int = 10,
    bom: bool = True,
) -> bytes:
    """An RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG``, with
    no structured data and ``xml`` in UTF-8 as its MSG. Severity 5 is notice, facility 10
    authpriv (security messages), as audit loggers send them."""
    if not 0 <= facility <= 23 or not 0 <= severity <= 7:
        raise ValueError(f"no syslog priority for facility {facility}, severity {severity}")
    header = " ".join(
        (
            f"<{facility * 8 + severity}>1",
            _timestamp(at),
            _header_field(hostname, HOSTNAME_MAX),
            _header_field(app_name, APP_NAME_MAX),
            _header_field(procid, PROCID_MAX),
            _header_field(msgid, MSGID_MAX),
            NIL,  # STRUCTURED-DATA
        )
    )
    return header.encode("ascii") + b" " + (BOM if bom else b"") + xml.encode("utf-8", "replace")


def octet_counted(message: bytes) -> bytes:
    """A message framed for a stream (RFC 5425 4.3, RFC 6587 3.4.1): ``MSG-LEN SP MSG``."""
    if not message:
        raise ValueError("an empty syslog message cannot be framed")
    return b"%d %b" % (len(message), message)


class SyslogSender:
    """Sends syslog messages to one collector, in order; over TCP or TLS on one connection,
    opened on first use and again after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        transport: Literal["udp", "tcp", "tls"],
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.transport, self.timeout = host, port, transport, timeout
        self._tls = (tls or ssl.create_default_context()) if transport == "tls" else None
        # The connection, and a task that reads it to see the collector close its end.
        self._stream: tuple[asyncio.StreamWriter, asyncio.Task[None]] | None = None
        self._datagrams: tuple[asyncio.DatagramTransport, _Datagrams] | None = None

    @property
    def where(self) -> str:
        return f"syslog collector {self.host}:{self.port} ({self.transport})"

    @property
    def connected(self) -> bool:
        """Whether a TCP or TLS connection is open and the collector has not closed it."""
        return self._stream is not None and not self._stream[1].done()

    async def send(self, messages: Sequence[bytes]) -> None:
        """Send ``messages`` in order; :class:`SyslogError` when the collector took none or
        not all (the caller sends them all again later)."""
        if not messages:
            return
        if self.transport == "udp":
            await self._send_datagrams(messages)
        else:
            await self._send_stream(messages)

    async def close(self) -> None:
        """Close the connection or socket, after what was written (within a second)."""
        if self._datagrams is not None:
            self._datagrams[0].close()
            self._datagrams = None
        await self._drop(graceful=True)

    async def _send_datagrams(self, messages: Sequence[bytes]) -> None:
        for message in messages:
            if len(message) > UDP_MAX:
                raise SyslogError(
                    f"a {len(message)}-byte audit message does not fit in a UDP datagram "
                    f"(at most {UDP_MAX} bytes): send to {self.host} over TCP or TLS"
                )
        if self._datagrams is not None and self._datagrams[0].is_closing():
            self._datagrams = None  # closed by an error: a new socket
        if self._datagrams is None:
            try:
                async with asyncio.timeout(self.timeout):
                    self._datagrams = await asyncio.get_running_loop().create_datagram_endpoint(
                        _Datagrams, remote_addr=(self.host, self.port)
                    )
            except TimeoutError as error:
                raise SyslogError(f"{self.where}: no address within {self.timeout:g} s") from error
            except OSError as error:
                raise SyslogError(f"{self.where}: {_reason(error)}") from error
        transport, protocol = self._datagrams
        for message in messages:
            if protocol.error is not None:  # an ICMP error for an earlier datagram
                earlier, protocol.error = protocol.error, None
                raise SyslogError(f"{self.where}: {_reason(earlier)}") from earlier
            transport.sendto(message)

    async def _send_stream(self, messages: Sequence[bytes]) -> None:
        writer, watch = await self._connection()
        try:
            async with asyncio.timeout(self.timeout):
                for message in messages:
                    if watch.done() or writer.is_closing():
                        raise await self._broken("the collector closed the connection")
                    writer.write(octet_counted(message))
                    await writer.drain()
        except TimeoutError as error:
            raise await self._broken(f"took nothing for {self.timeout:g} s") from error
        except OSError as error:
            raise await self._broken(_reason(error)) from error

    async def _broken(self, reason: str) -> SyslogError:
        """Drop a connection that failed: the error to raise."""
        await self._drop()
        log.warning("audit.syslog_connection_lost", collector=self.where, reason=reason)
        return SyslogError(f"{self.where}: {reason}")

    async def _connection(self) -> tuple[asyncio.StreamWriter, asyncio.Task[None]]:
        if self._stream is not None:
            return self._stream
        server_hostname = self.host if self._tls is not None else None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._tls, server_hostname=server_hostname
                )
        except TimeoutError as error:
            raise SyslogError(f"{self.where}: no connection within {self.timeout:g} s") from error
        except OSError as error:  # refused, unreachable, or a TLS handshake that failed
            raise SyslogError(f"cannot connect to {self.where}: {_reason(error)}") from error
        self._stream = writer, asyncio.create_task(_until_closed(reader))
        log.info("audit.syslog_connected", collector=self.where)
        return self._stream

    async def _drop(self, graceful: bool = False) -> None:
        """Close the connection, if any: a broken one at once, dropping what it still holds
        (the caller sends it all again), a sound one after its last messages."""
        if self._stream is None:
            return
        writer, watch = self._stream
        self._stream = None
        watch.cancel()
        if not graceful:
            writer.transport.abort()
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


class _Datagrams(asyncio.DatagramProtocol):
    """Keeps the error an earlier datagram brought back (port unreachable), for the next
    send to raise."""

    def __init__(self) -> None:
        self.error: OSError | None = None

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Read until the collector closes its end (a syslog collector sends nothing: whatever
    it does send is dropped)."""
    with contextlib.suppress(OSError):
        while await reader.read(4096):
            pass


def _header_field(value: str, longest: int) -> str:
    """A header field: printable US-ASCII only, cut to its length, ``-`` when empty."""
    kept = "".join(c for c in value if "!" <= c <= "~")[:longest]
    return kept or NIL


def _timestamp(at: datetime) -> str:
    """RFC 3339 with microseconds and the time's own offset (UTC for a naive time, and for
    an offset of seconds, which RFC 5424 cannot write)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    offset = at.utcoffset() or timedelta(0)
    if offset % timedelta(minutes=1):
        at, offset = at.astimezone(UTC), timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{at:%Y-%m-%dT%H:%M:%S.%f}{sign}{hours:02d}:{minutes:02d}"


def _reason(error: OSError) -> str:
    """What went wrong, in words (not an OSError's repr)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error.strerror or 'handshake error'}"
    if error.errno:
        return os.strerror(error.errno).lower()
    # asyncio's "Multiple exceptions: [Errno 111] Connect call failed ('::1', ...), ...".
    numbers = sorted(set(re.findall(r"\[Errno (\d+)\]", str(error))))
    if numbers:
        return ", ".join(os.strerror(int(number)).lower() for number in numbers)
    return error.strerror or str(error) or type(error).__name__
