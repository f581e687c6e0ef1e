"""Opening an association with a DICOM peer, and saying in one sentence why none opened.

pynetdicom says why it could not connect only in its log, and passes an A-ASSOCIATE-RJ on
as three numbers; here both become a :class:`NetError` that names the peer and the reason,
so that a command can report it in one line.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ

# The AE titles of the store server (receiver.ae_title's default) and of its SCU side, so that
# ``store-server echo HOST PORT`` reaches a store server with its defaults.
DEFAULT_CALLED_AET = "STORE_SERVER"
DEFAULT_CALLING_AET = "STORE_SCU"

# A-ASSOCIATE-RJ (PS3.8 9.3.4, table 9-21): the reason for each (result source, diagnostic).
_REJECTION_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title {calling!r} not recognised",
    (1, 7): "called AE title {called!r} not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
_REJECTION_RESULTS = {1: "permanent", 2: "transient"}
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\] ")


class NetError(Exception):
    """The peer could not be reached, refused the association, or did not answer."""


class AssociationRejected(NetError):
    """The peer answered with an A-ASSOCIATE-RJ: it is there, and applying its policy."""


@dataclass(frozen=True)
class Peer:
    """Where to connect, as whom, and with which TLS context (None: plain TCP)."""

    host: str
    port: int
    called_aet: str = DEFAULT_CALLED_AET
    calling_aet: str = DEFAULT_CALLING_AET
    tls: ssl.SSLContext | None = None
    timeout: float = 30.0

    def __str__(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"


def rejection_reason(
    result: int, source: int, diagnostic: int, *, calling_aet: str, called_aet: str
) -> str:
    """The A-ASSOCIATE-RJ in words, e.g. ``called AE title 'FOO' not recognised (permanent)``."""
    reason = _REJECTION_REASONS.get((source, diagnostic))
    if reason is None:
        reason = f"reason {diagnostic} from source {source}"
    kind = _REJECTION_RESULTS.get(result, f"result {result}")
    return f"{reason.format(calling=calling_aet, called=called_aet)} ({kind})"


def check_host(peer: Peer) -> None:
    """:class:`NetError` now if the peer's host name does not resolve."""
    try:
        socket.getaddrinfo(peer.host, peer.port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NetError(_unknown_host(peer, error)) from None


def associate(
    peer: Peer, contexts: list[tuple[UID, tuple[UID, ...]]], scp_of: tuple[UID, ...] = ()
) -> Association:
    """An established association with ``peer`` proposing ``contexts`` (abstract syntax,
    transfer syntaxes; none: pynetdicom's defaults), and proposing to act as the SCP of the
    ``scp_of`` SOP classes (role selection); :class:`NetError` saying why not."""
    ae = AE(ae_title=peer.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.connection_timeout = peer.timeout
    for abstract_syntax, transfer_syntaxes in contexts:
        if transfer_syntaxes:
            ae.add_requested_context(abstract_syntax, list(transfer_syntaxes))
        else:
            ae.add_requested_context(abstract_syntax)
    # A peer that closes its connection right after its A-ASSOCIATE-RJ can have pynetdicom
    # report an abort instead: the rejection is kept as it arrives.
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_pdu(event: Any) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    options: dict[str, Any] = {
        "ae_title": peer.called_aet,
        "evt_handlers": [(evt.EVT_PDU_RECV, on_pdu)],
        "ext_neg": [build_role(uid, scu_role=False, scp_role=True) for uid in scp_of],
    }
    if peer.tls is not None:
        options["tls_args"] = (peer.tls, peer.host)
    failures = _FailureLog()
    pynetdicom_log = logging.getLogger("pynetdicom")
    pynetdicom_log.addHandler(failures)
    try:
        association = ae.associate(peer.host, peer.port, **options)
    except socket.gaierror as error:  # resolved before any thread starts, so raised here
        raise NetError(_unknown_host(peer, error)) from None
    finally:
        pynetdicom_log.removeHandler(failures)
    if association.is_established:
        return association
    if association.is_rejected or rejections:
        raise AssociationRejected(
            f"{peer} rejected the association: {_rejection(association, rejections, peer)}"
        )
    threads = {association.ident, association.dul.ident}
    raise NetError(f"{peer}: {_why_not(failures.messages(threads), peer.timeout)}")


def _unknown_host(peer: Peer, error: socket.gaierror) -> str:
    return f"{peer}: unknown host {peer.host!r} ({error.strerror})"


def _rejection(association: Association, received: list[A_ASSOCIATE_RJ], peer: Peer) -> str:
    # pynetdicom keeps the A-ASSOCIATE-RJ it received as the acceptor's primitive, unless it
    # took the peer's closed connection for an abort first; then the PDU kept on arrival.
    answer = association.acceptor.primitive
    if received:
        pdu = received[0]
        result, source, diagnostic = pdu.result, pdu.source, pdu.reason_diagnostic
    elif answer is not None:
        result, source, diagnostic = answer.result, answer.result_source, answer.diagnostic
    else:
        return "no reason given"
    if result is None or source is None or diagnostic is None:
        return "no reason given"
    return rejection_reason(
        result, source, diagnostic, calling_aet=peer.calling_aet, called_aet=peer.called_aet
    )


def _why_not(messages: list[str], timeout: float) -> str:
    """Why an association neither opened nor was rejected, from pynetdicom's error records."""
    for message in messages:
        if message.startswith("TCP Initialisation Error: "):
            reason = _ERRNO_PREFIX.sub("", message.removeprefix("TCP Initialisation Error: "))
            return f"cannot connect: {reason[:1].lower()}{reason[1:]}"
    for message in messages:
        if message.startswith("ACSE timeout"):
            return f"no answer to the association request within {timeout:g} s"
        if message.startswith("Unknown PDU type"):
            return f"the peer does not speak DICOM ({message[0].lower()}{message[1:]})"
        if message.startswith("No accepted presentation contexts"):
            return "the peer accepted none of the presentation contexts proposed"
        if message.startswith("Association Aborted"):
            return "the peer aborted the association"
    return "no association (aborted or timed out)"


class _FailureLog(logging.Handler):
    """pynetdicom's error records while an association opens: the only place it says why a
    connection failed. Records are kept per thread, since other associations may log too."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)

    def messages(self, threads: set[int | None]) -> list[str]:
        return [r.getMessage() for r in self._records if r.thread in threads]
