"""The receiver's AE on the network: one asyncio server per port, plain and TLS, and the
limits that keep any peer from locking modalities out.

- An idle connection costs a suspended read, no thread. At ``receiver.max_connections``, a new
  connection displaces the oldest one that has not requested an association yet (a port probe
  or a stalled peer), or is closed when every open one is associated.
- The A-ASSOCIATE-RQ must arrive whole within ``receiver.acse_timeout`` (the ARTIM timer), and
  may not be longer than :data:`LONGEST_REQUEST`; a peer dribbling it a byte a second is
  dropped when the timer runs out.
- TLS handshakes run in the event loop with ``receiver.acse_timeout`` as their timeout, so an
  idle TLS connection delays nobody else's handshake; a failed one (no certificate, one the
  site CA did not sign, an expired one) is a security alert in the audit trail.
- Associations are limited in all and per peer address by the receiver's policy, which logs
  each refusal with its reason. Each association accepted or refused is audited, a refusal
  for an unknown AE title, a certificate or a user identity also as a security alert, as is a
  malformed PDU; each association's end reports what it stored, by patient.
- Stop: the servers stop accepting, connections without an association are closed, and
  associations in flight get ``receiver.shutdown_grace`` seconds to finish before they are
  aborted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from pynetdicom.presentation import PresentationContext

from services.receiver import upper_layer
from services.receiver.association import Association
from services.receiver.audit import AssociationAudit, AuditReporter
from services.receiver.negotiation import negotiate, read_request, reject_pdu
from services.receiver.operations import Handler, Peer
from services.receiver.policy import (
    USERNAME,
    USERNAME_AND_PASSCODE,
    UserIdentity,
    check_association,
)
from services.receiver.settings import ReceiverSettings
from services.receiver.upper_layer import (
    SERVICE_PROVIDER,
    UNEXPECTED_PDU,
    Link,
    PeerGone,
    ProtocolError,
)
from shared.log import get_logger
from shared.process import StartError

log = get_logger("services.receiver")

LONGEST_REQUEST = 256 * 1024  # an A-ASSOCIATE-RQ with 128 contexts is about 20 KiB


@dataclass(eq=False)
class _Connection:
    link: Link
    address: str
    port: int
    task: asyncio.Task[None]
    opened: float = field(default_factory=time.monotonic)
    association: Association | None = None


def _certificate_name(writer: asyncio.StreamWriter) -> str | None:
    """The Common Name of the peer's verified certificate; None on the plain port, or when no
    CA is configured (a certificate is then not verified, and its name worth nothing)."""
    tls = writer.get_extra_info("ssl_object")
    found = tls.getpeercert() if tls is not None else None
    for attributes in (found or {}).get("subject", ()):
        for name, value in attributes:
            if name == "commonName":
                return str(value)
    return None


def tls_context(settings: ReceiverSettings) -> ssl.SSLContext:
    tls = settings.tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert tls.cert is not None and tls.key is not None  # checked by the settings
    context.load_cert_chain(tls.cert, tls.key)
    if tls.ca is not None:
        context.load_verify_locations(tls.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Listener:
    """The running servers (plain and/or TLS) of one AE, and their connections."""

    def __init__(
        self,
        settings: ReceiverSettings,
        handlers: dict[str, tuple[Handler, PresentationContext]],
        storage: Handler,
        reporter: AuditReporter,
    ) -> None:
        self._settings = settings
        self._reporter = reporter
        self._handlers = {syntax: handler for syntax, (handler, _) in handlers.items()}
        self._contexts = [context for _, context in handlers.values()]
        self._storage = storage
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._per_peer: Counter[str] = Counter()
        self._associations = 0
        self._stopping = False

    @property
    def ports(self) -> list[int]:
        return [int(server.sockets[0].getsockname()[1]) for server in self._servers]

    async def start(self) -> None:
        settings = self._settings
        try:
            if not settings.tls.only:
                await self._serve("receiver.port", settings.port, None)
            if settings.tls.port is not None:
                await self._serve("receiver.tls.port", settings.tls.port, tls_context(settings))
        except StartError:
            await self.stop(grace=0)
            raise
        log.info(
            "receiver.listening",
            ae_title=settings.ae_title,
            host=settings.host,
            ports=self.ports,
            tls_port=settings.tls.port,
        )

    async def _serve(self, setting: str, port: int, context: ssl.SSLContext | None) -> None:
        host = self._settings.host
        try:
            server = await asyncio.start_server(
                partial(self._connected, context),
                host,
                port,
                backlog=256,
                limit=upper_layer.CHUNK,
            )
        except OSError as error:  # the port is taken, or ours to bind only as root
            raise StartError(
                f"{setting}: cannot listen on {host}:{port}: "
                f"{os.strerror(error.errno) if error.errno else error}"
            ) from None
        self._servers.append(server)

    async def _connected(
        self,
        context: ssl.SSLContext | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        address, port = writer.get_extra_info("peername")[:2]
        if context is not None and not await self._handshake(context, writer, str(address), port):
            writer.transport.abort()
            return
        link = Link(reader, writer, self._settings.network_timeout)
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(link, str(address), int(port), task)
        if self._stopping or not self._admit(connection):
            await link.close()
            return
        self._connections.add(connection)
        try:
            await self._run(connection)
        except asyncio.CancelledError:
            pass  # stopped: the stop has dealt with the peer
        finally:
            self._connections.discard(connection)
            await link.close()

    async def _handshake(
        self, context: ssl.SSLContext, writer: asyncio.StreamWriter, address: str, port: int
    ) -> bool:
        """The TLS handshake, within ``receiver.acse_timeout``; a failure's reason is logged,
        and audited as a security alert when the peer's certificate was the trouble."""
        peer = {"peer_address": address, "peer_port": port}
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self._settings.acse_timeout)
        except ssl.SSLError as error:
            reason = f"TLS handshake failed: {error.reason or error}"
            log.warning("connection.tls_refused", reason=reason, **peer)
            self._reporter.alert("tls_handshake", reason, address, peer_port=port)
            return False
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            # A probe, or a peer gone before finishing: not a security matter.
            log.info("connection.tls_incomplete", reason=str(error) or type(error).__name__, **peer)
            return False
        return True

    def _admit(self, connection: _Connection) -> bool:
        """Room for one more connection, made by displacing the oldest unassociated one."""
        if len(self._connections) < self._settings.max_connections:
            return True
        waiting = [c for c in self._connections if c.association is None]
        peer = {"peer_address": connection.address, "peer_port": connection.port}
        if not waiting:
            log.warning(
                "connection.refused",
                reason=f"receiver.max_connections ({self._settings.max_connections}) "
                "connections open, all associated",
                **peer,
            )
            return False
        oldest = min(waiting, key=lambda c: c.opened)
        log.warning(
            "connection.displaced",
            reason="receiver.max_connections reached; no association requested yet",
            peer_address=oldest.address,
            peer_port=oldest.port,
        )
        self._connections.discard(oldest)
        oldest.task.cancel()
        return True

    async def _run(self, connection: _Connection) -> None:
        link = connection.link
        port = connection.port
        peer = {"peer_address": connection.address, "peer_port": port}
        try:
            association = await self._associate(connection)
        except TimeoutError:
            log.info(
                "connection.timed_out",
                reason=f"no A-ASSOCIATE-RQ within receiver.acse_timeout "
                f"({self._settings.acse_timeout:g}s)",
                **peer,
            )
            return
        except ProtocolError as error:
            # Not DICOM (a stranger speaking HTTP, a scanner): noted, not a warning.
            log.info("connection.aborted", reason=str(error), **peer)
            self._reporter.alert("malformed_pdu", str(error), connection.address, peer_port=port)
            await link.abort(SERVICE_PROVIDER, error.reason)
            return
        except PeerGone as error:
            # Mostly port probes (health checks, load balancers): not worth a line each.
            log.debug("connection.closed", reason=str(error), **peer)
            return
        if association is None:
            return
        self._associations += 1
        self._per_peer[connection.address] += 1
        try:
            how = await association.serve()
        except ProtocolError as error:
            log.warning(
                "association.aborted",
                reason=str(error),
                **association.summary(),
                **association.log_fields(),
            )
            self._reporter.alert(
                "malformed_pdu",
                str(error),
                connection.address,
                peer_port=port,
                calling_ae=association.peer.calling_ae,
            )
            await association.provider_abort(error)
        except PeerGone as error:
            log.warning(
                "association.aborted",
                reason=str(error),
                **association.summary(),
                **association.log_fields(),
            )
        else:
            fields = {**association.summary(), **association.log_fields()}
            if how == "released":
                log.info("association.released", **fields)
            else:
                log.warning("association.aborted", reason="A-ABORT from the peer", **fields)
        finally:
            if association.audit is not None:
                association.audit.ended()
            self._associations -= 1
            self._per_peer[connection.address] -= 1
            if not self._per_peer[connection.address]:
                del self._per_peer[connection.address]

    async def _associate(self, connection: _Connection) -> Association | None:
        """Read and answer the A-ASSOCIATE-RQ; the association, or None when rejected."""
        settings = self._settings
        link = connection.link
        async with asyncio.timeout(settings.acse_timeout):  # the ARTIM timer
            pdu_type, length = await link.header()
            if pdu_type != upper_layer.A_ASSOCIATE_RQ:
                raise ProtocolError(
                    f"PDU type 0x{pdu_type:02X} before an association", UNEXPECTED_PDU
                )
            if length > LONGEST_REQUEST:
                raise ProtocolError(f"A-ASSOCIATE-RQ of {length} bytes")
            body = await link.read(length)
        request = read_request(_header(pdu_type, length) + body)
        peer = Peer(request.calling_ae, request.called_ae, connection.address, connection.port)
        fields = {
            "calling_ae": peer.calling_ae,
            "called_ae": peer.called_ae,
            "peer_address": peer.address,
            "peer_port": peer.port,
        }
        log.info("association.requested", **fields)
        problem = request.rejection()
        user = request.user_identity
        alert: str | None = None
        if problem is not None:
            rejection, reason = problem
        else:
            refusal = check_association(
                settings,
                calling_ae=peer.calling_ae,
                called_ae=peer.called_ae,
                peer_address=peer.address,
                active_associations=self._associations + 1,
                peer_associations=self._per_peer[peer.address] + 1,
                user=user,
                certificate=_certificate_name(link.writer),
            )
            rejection, reason = (refusal.rejection, refusal.reason) if refusal else ((0, 0, 0), "")
            alert = refusal.alert if refusal else None
        audited = {
            **fields,
            "tls": link.writer.get_extra_info("ssl_object") is not None,
            "user": _user_name(user),
        }
        if reason:
            log.warning("association.rejected", reason=reason, **fields)
            self._reporter.report("association_refused", {**audited, "reason": reason})
            if alert is not None:
                self._reporter.alert(
                    alert,
                    reason,
                    peer.address,
                    peer_port=peer.port,
                    calling_ae=peer.calling_ae,
                    called_ae=peer.called_ae,
                )
            await link.send(reject_pdu(rejection))
            return None
        agreement, accept = negotiate(
            request,
            self._contexts,
            max_pdu=settings.max_pdu_size,
            max_operations=settings.max_operations,
            accept_unknown=settings.accept_unknown_sop_classes,
            identity_response=bool(settings.user_identities and request.identity_response_wanted),
        )
        await link.send(accept)
        association = Association(
            link,
            agreement,
            peer,
            self._handlers,
            self._storage,
            settings.max_pdu_size,
            settings.dimse_timeout,
            AssociationAudit(self._reporter, fields),
        )
        self._reporter.report("association_accepted", audited)
        connection.association = association
        log.info(
            "association.accepted",
            contexts=len(agreement.contexts),
            operations=agreement.operations,
            **fields,
        )
        return association

    async def stop(self, grace: float) -> None:
        """Stop accepting; let associations in flight finish for ``grace`` seconds, then abort."""
        self._stopping = True
        for server in self._servers:
            server.close()
        self._servers.clear()
        for connection in list(self._connections):
            if connection.association is None:
                connection.task.cancel()
        active = [c for c in self._connections if c.association is not None]
        if active:
            log.info("receiver.draining", associations=len(active), grace_seconds=grace)
            await asyncio.wait([c.task for c in active], timeout=grace)
        for connection in [c for c in self._connections if c.association is not None]:
            assert connection.association is not None
            await connection.association.abort("the receiver is stopping")
            connection.task.cancel()
        remaining = [c.task for c in self._connections]
        if remaining:
            await asyncio.wait(remaining, timeout=5)
        log.info("receiver.stopped")


def _user_name(user: UserIdentity | None) -> str | None:
    """The user an association names (a username identity), never its passcode."""
    if user is None or user.kind not in (USERNAME, USERNAME_AND_PASSCODE):
        return None
    return user.primary.decode("utf-8", "replace")


def _header(pdu_type: int, length: int) -> bytes:
    return bytes([pdu_type, 0]) + length.to_bytes(4, "big")
