"""Audit messages to a syslog collector: the RFC 5424 header, octet counting (RFC 5425/6587),
and a sender against real local collectors started here (a UDP socket, a TCP server, a TLS
server with a self-signed certificate), each receiving the exact bytes sent; a collector
that closes, or none at all, is a SyslogError the caller can retry on."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.audit.syslog import (
    BOM,
    UDP_MAX,
    SyslogError,
    SyslogSender,
    octet_counted,
    syslog_message,
)
from tests.support.tls import make_certificate

# RFC 5424 6: HEADER SP STRUCTURED-DATA SP MSG, for a message without structured data.
HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 "
    rb"(?P<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}(?:Z|[+-]\d\d:\d\d)) "
    rb"(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) - (?P<msg>.*)\Z",
    re.DOTALL,
)
XML = "<AuditMessage><ParticipantObjectName>Müller^Jörg</ParticipantObjectName></AuditMessage>"
AT = datetime(2024, 3, 1, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=1)))


def audit(
    xml: str = XML,
    *,
    at: datetime = AT,
    hostname: str = "pacs1.example.org",
    app_name: str = "store-server",
    procid: str = "4242",
    **priority: Any,
) -> bytes:
    return syslog_message(
        xml, at=at, hostname=hostname, app_name=app_name, procid=procid, **priority
    )


def test_the_header_is_rfc_5424_with_the_xml_as_msg() -> None:
    found = HEADER.match(audit())
    assert found is not None
    assert int(found["pri"]) == 85  # facility 10 (authpriv) * 8 + severity 5 (notice)
    assert found["timestamp"] == b"2024-03-01T09:30:15.250000+01:00"
    assert (found["hostname"], found["app"], found["procid"]) == (
        b"pacs1.example.org",
        b"store-server",
        b"4242",
    )
    assert found["msgid"] == b"IHE+RFC-3881"
    assert found["msg"] == BOM + XML.encode("utf-8")


def test_priority_bom_and_a_naive_time() -> None:
    message = audit(severity=4, facility=13, bom=False, at=datetime(2024, 1, 2, 3, 4, 5))
    found = HEADER.match(message)
    assert found is not None
    assert int(found["pri"]) == 13 * 8 + 4
    assert found["timestamp"] == b"2024-01-02T03:04:05.000000+00:00"
    assert found["msg"] == XML.encode("utf-8")
    with pytest.raises(ValueError):
        audit(facility=24)


def test_header_fields_are_printable_ascii_cut_to_their_length() -> None:
    message = audit(hostname="pacs 1\n.exämple", app_name="a" * 60, procid="", msgid="m" * 40)
    found = HEADER.match(message)
    assert found is not None
    assert found["hostname"] == b"pacs1.exmple"
    assert found["app"] == b"a" * 48
    assert found["procid"] == b"-"
    assert found["msgid"] == b"m" * 32


def test_octet_counting_counts_bytes() -> None:
    assert octet_counted(b"hello") == b"5 hello"
    message = audit()
    assert octet_counted(message) == str(len(message)).encode() + b" " + message
    with pytest.raises(ValueError):
        octet_counted(b"")


class _Received(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.put_nowait(data)


async def test_udp_sends_a_datagram_each() -> None:
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(
        _Received, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    sender = SyslogSender("127.0.0.1", port, "udp")
    try:
        sent = [audit(), audit("<AuditMessage/>"), audit("x" * 60_000)]
        await sender.send(sent)
        received = [await asyncio.wait_for(collector.datagrams.get(), 5) for _ in sent]
        assert received == sent
    finally:
        await sender.close()
        transport.close()


async def test_udp_refuses_a_message_no_datagram_carries() -> None:
    sender = SyslogSender("127.0.0.1", 9, "udp")
    with pytest.raises(SyslogError, match=f"{UDP_MAX + 1}-byte"):
        await sender.send([b"x" * (UDP_MAX + 1)])
    await sender.close()


@dataclass
class Collector:
    """A syslog collector over TCP (or TLS): the octet-counted messages of each connection."""

    port: int
    connections: list[list[bytes]] = field(default_factory=list)
    close_after: int | None = None  # messages read before it closes a connection
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        messages: list[bytes] = []
        self.connections.append(messages)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while self.close_after is None or len(messages) < self.close_after:
                length = int(await reader.readuntil(b" "))
                messages.append(await reader.readexactly(length))
                self.arrived.set()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        self.closed.set()

    async def received(self, count: int) -> list[bytes]:
        async with asyncio.timeout(5):
            while sum(map(len, self.connections)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return [m for messages in self.connections for m in messages]


@contextlib.asynccontextmanager
async def collector(
    tls: ssl.SSLContext | None = None, close_after: int | None = None
) -> AsyncIterator[Collector]:
    served = Collector(0, close_after=close_after)
    server = await asyncio.start_server(served.serve, "127.0.0.1", 0, ssl=tls)
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_sends_octet_counted_on_one_connection() -> None:
    async with collector() as listening:
        sender = SyslogSender("127.0.0.1", listening.port, "tcp")
        first, second = [audit(), audit("y" * 200_000)], [audit("<AuditMessage/>")]
        await sender.send(first)
        await sender.send(second)
        assert await listening.received(3) == first + second
        assert len(listening.connections) == 1
        await sender.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with openssl, as the other TLS tests'
    are: the ``cryptography`` package is not a dependency here)."""
    return make_certificate(tmp_path, "collector", "127.0.0.1")


async def test_tls_sends_to_a_collector_it_trusts(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    async with collector(serving) as listening:
        sender = SyslogSender(
            "127.0.0.1", listening.port, "tls", ssl.create_default_context(cafile=cert)
        )
        sent = [audit(), audit("z" * 100_000)]
        await sender.send(sent)
        assert await listening.received(2) == sent
        await sender.close()


async def test_tls_refuses_a_collector_it_does_not_trust(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    async with collector(serving) as listening:
        sender = SyslogSender("127.0.0.1", listening.port, "tls")  # the system's CAs only
        with pytest.raises(SyslogError, match="TLS failed") as raised:
            await sender.send([audit()])
        assert "Errno" not in str(raised.value)
        assert sum(map(len, listening.connections)) == 0


async def test_a_collector_that_closes_is_an_error_then_a_new_connection() -> None:
    async with collector(close_after=1) as listening:
        sender = SyslogSender("127.0.0.1", listening.port, "tcp")
        await sender.send([audit()])
        await asyncio.wait_for(listening.closed.wait(), 5)
        await asyncio.sleep(0.2)  # the caller's next send comes later: the close is seen
        assert not sender.connected
        with pytest.raises(SyslogError, match="closed the connection"):
            await sender.send([audit("<lost/>")])
        listening.close_after = None
        await sender.send([audit("<again/>")])  # the caller's retry: a new connection
        assert await listening.received(2) == [audit(), audit("<again/>")]
        assert len(listening.connections) == 2
        await sender.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # one address, or two
async def test_nothing_listening_is_an_error(host: str, free_port: int) -> None:
    sender = SyslogSender(host, free_port, "tcp")
    with pytest.raises(SyslogError, match="cannot connect") as raised:
        await sender.send([audit()])
    assert "refused" in str(raised.value) and "Errno" not in str(raised.value)
    await sender.close()


async def test_a_collector_that_reads_nothing_times_out() -> None:
    stalled: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)  # kept open, never read: the socket buffers fill

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = SyslogSender("127.0.0.1", port, "tcp", timeout=0.3)
    try:
        with pytest.raises(SyslogError, match=r"took nothing for 0\.3 s"):
            await sender.send([b"x" * 64_000_000])
    finally:
        await sender.close()
        for writer in stalled:
            writer.close()
        server.close()
        await server.wait_closed()
