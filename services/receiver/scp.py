"""The DICOM listener: the AE, its presentation contexts and handlers, its servers.

Storage contexts are accepted in the transfer syntax the sender proposes first, never
transcoded. With ``receiver.accept_unknown_sop_classes`` (the default), private and unknown
SOP classes are treated as storage too, like a PACS archive does. Data sets are received in
chunks straight to disk (``incoming/`` in the spool), so memory stays bounded however large an
instance is.
"""

from __future__ import annotations

import ssl
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    StoragePresentationContexts,
    VerificationPresentationContexts,
    _config,
    evt,
)
from pynetdicom.transport import ThreadedAssociationServer

from services.receiver import handlers, mpps
from services.receiver.intake import Intake, Publish
from services.receiver.settings import ReceiverSettings
from services.receiver.spool import Spool
from shared.log import get_logger
from shared.process import StartError

log = get_logger(__name__)


def build_ae(settings: ReceiverSettings) -> AE:
    # pynetdicom reads these module-level switches during each association.
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = settings.accept_unknown_sop_classes
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_size
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    # Our own policy check runs first and logs the reason; these are pynetdicom's backstops.
    ae.require_called_aet = settings.require_called_ae
    contexts = list(VerificationPresentationContexts)
    if not settings.accept_unknown_sop_classes:
        contexts += StoragePresentationContexts
    for context in contexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(mpps.MPPS_SOP_CLASS)
    return ae


def event_handlers(settings: ReceiverSettings, intake: Intake, publish: Publish) -> list[Any]:
    ledger = handlers.AssociationLedger()
    return [
        (evt.EVT_CONN_OPEN, handlers.on_connection_open),
        (evt.EVT_REQUESTED, handlers.on_requested, [settings]),
        (evt.EVT_ACCEPTED, handlers.on_accepted, [ledger]),
        (evt.EVT_REJECTED, handlers.on_rejected),
        (evt.EVT_RELEASED, handlers.on_released, [ledger]),
        (evt.EVT_ABORTED, handlers.on_aborted, [ledger]),
        (evt.EVT_C_ECHO, handlers.on_echo),
        (evt.EVT_C_STORE, handlers.on_store, [intake, ledger]),
        (evt.EVT_N_CREATE, mpps.on_n_create, [publish]),
        (evt.EVT_N_SET, mpps.on_n_set, [publish]),
    ]


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
    """The running servers (plain, and TLS when configured) of one AE."""

    def __init__(
        self, settings: ReceiverSettings, spool: Spool, intake: Intake, publish: Publish
    ) -> None:
        self._settings = settings
        self._spool = spool
        self._intake = intake
        self._publish = publish
        self._ae: AE | None = None
        self._servers: list[ThreadedAssociationServer] = []

    @property
    def ports(self) -> list[int]:
        return [int(server.server_address[1]) for server in self._servers]

    def start(self) -> None:
        # pynetdicom creates each chunked data set with tempfile; keep them in the spool's
        # incoming/ so the final rename stays on one filesystem and start-up can clear them.
        tempfile.tempdir = str(self._spool.incoming)
        self._ae = build_ae(self._settings)
        handlers_list = event_handlers(self._settings, self._intake, self._publish)
        try:
            self._serve("receiver.port", self._settings.port, handlers_list, None)
            if self._settings.tls.port is not None:
                context = tls_context(self._settings)
                self._serve("receiver.tls.port", self._settings.tls.port, handlers_list, context)
        except StartError:
            self.stop(grace=0)
            raise
        log.info(
            "receiver.listening",
            ae_title=self._settings.ae_title,
            host=self._settings.host,
            ports=self.ports,
            tls_port=self._settings.tls.port,
        )

    def _serve(
        self,
        setting: str,
        port: int,
        handlers_list: list[Any],
        context: ssl.SSLContext | None,
    ) -> None:
        assert self._ae is not None
        address = (self._settings.host, port)
        try:
            server = self._ae.start_server(
                address, block=False, evt_handlers=handlers_list, ssl_context=context
            )
        except OSError as error:  # the port is taken, or ours to bind only as root
            raise StartError(
                f"{setting}: cannot listen on {address[0]}:{port}: {error.strerror or error}"
            ) from None
        assert server is not None  # non-blocking start_server always returns its server
        self._servers.append(server)

    def stop(self, grace: float) -> None:
        """Stop accepting; let associations in flight finish for ``grace`` seconds, then abort."""
        for server in self._servers:
            server.shutdown()
        self._servers.clear()
        if self._ae is None:
            return
        deadline = time.monotonic() + grace
        active = self._active()
        if active:
            log.info("receiver.draining", associations=len(active), grace_seconds=grace)
        while active and time.monotonic() < deadline:
            time.sleep(0.05)
            active = self._active()
        for association in active:
            log.warning("receiver.aborting_association", peer=association.requestor.address)
            association.abort()
        self._ae.shutdown()
        log.info("receiver.stopped")

    def _active(self) -> Sequence[Any]:
        """Associations with work in flight; a connection still waiting to send its
        association request (a port probe, say) is not worth waiting for."""
        assert self._ae is not None
        return [assoc for assoc in self._ae.active_associations if assoc.is_established]
