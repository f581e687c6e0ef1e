"""Association negotiation as acceptor (PS3.8 7.1, PS3.7 D.3.3), with pynetdicom's PDUs.

The A-ASSOCIATE-RQ is decoded by pynetdicom's ``A_ASSOCIATE_RQ``; presentation contexts are
negotiated by ``pynetdicom.presentation``: storage contexts (every SOP class, with
``receiver.accept_unknown_sop_classes`` unknown and private ones too) are accepted in the first
proposed transfer syntax that pydicom can decode, never transcoded; the other services'
contexts in the syntaxes their handlers support. Role selection follows pynetdicom's table;
an asynchronous operations window is granted up to ``receiver.max_operations``; a user
identity is checked by the receiver's policy. The A-ASSOCIATE-AC carries our maximum PDU
length, Implementation Class UID and version name.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydicom.uid import UID
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import (
    PresentationContext,
    negotiate_unrestricted,
)
from pynetdicom.sop_class import _STORAGE_CLASSES

from services.receiver.file_meta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from services.receiver.policy import UserIdentity
from services.receiver.upper_layer import UNEXPECTED_PDU, ProtocolError

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
REJECT_APPLICATION_CONTEXT = (0x01, 0x01, 0x02)
REJECT_PROTOCOL_VERSION = (0x01, 0x02, 0x02)
ABSTRACT_SYNTAX_NOT_SUPPORTED = 0x03
TRANSFER_SYNTAXES_NOT_SUPPORTED = 0x04
_STORAGE_UIDS = frozenset(_STORAGE_CLASSES.values())


@dataclass(frozen=True)
class Request:
    """What an A-ASSOCIATE-RQ asks for."""

    primitive: A_ASSOCIATE
    protocol_version: int

    @property
    def calling_ae(self) -> str:
        return str(self.primitive.calling_ae_title).strip()

    @property
    def called_ae(self) -> str:
        return str(self.primitive.called_ae_title).strip()

    def items(self, kind: type[Any]) -> list[Any]:
        return [item for item in self.primitive.user_information if isinstance(item, kind)]

    @property
    def user_identity(self) -> UserIdentity | None:
        found = self.items(UserIdentityNegotiation)
        if not found:
            return None
        item = found[0]
        return UserIdentity(
            int(item.user_identity_type or 0),
            bytes(item.primary_field or b""),
            bytes(item.secondary_field or b""),
        )

    @property
    def identity_response_wanted(self) -> bool:
        found = self.items(UserIdentityNegotiation)
        return bool(found and found[0].positive_response_requested)

    def rejection(self) -> tuple[tuple[int, int, int], str] | None:
        """A protocol-level reason to reject, before any policy is consulted."""
        if not self.protocol_version & 0x0001:
            return REJECT_PROTOCOL_VERSION, f"protocol version 0x{self.protocol_version:04X}"
        context = str(self.primitive.application_context_name or "")
        if context != APPLICATION_CONTEXT:
            return REJECT_APPLICATION_CONTEXT, f"application context {context!r} is not DICOM's"
        return None


@dataclass(frozen=True)
class Agreement:
    """An established association's terms."""

    calling_ae: str
    called_ae: str
    contexts: dict[int, PresentationContext]  # the accepted ones, by context ID
    peer_max_pdu: int  # 0: unlimited
    operations: int  # requests the peer may have outstanding on us
    peer_implementation: str
    # SOP classes the peer takes the SCP role for (role selection): we may send it C-STOREs
    # on their contexts, as C-GET's sub-operations.
    peer_scp_classes: frozenset[str] = frozenset()


def read_request(encoded: bytes) -> Request:
    """Decode a whole A-ASSOCIATE-RQ PDU (header included)."""
    pdu = A_ASSOCIATE_RQ()
    try:
        pdu.decode(encoded)
        primitive = pdu.to_primitive()
    # pynetdicom signals a malformed PDU with many exception types; all mean the same here.
    except Exception as error:
        raise ProtocolError(f"undecodable A-ASSOCIATE-RQ: {type(error).__name__}") from None
    if not primitive.presentation_context_definition_list:
        raise ProtocolError("A-ASSOCIATE-RQ without presentation contexts", UNEXPECTED_PDU)
    return Request(primitive, struct.unpack(">H", encoded[6:8])[0])


def negotiate(
    request: Request,
    services: Sequence[PresentationContext],
    *,
    max_pdu: int,
    max_operations: int,
    accept_unknown: bool,
    identity_response: bool,
) -> tuple[Agreement, bytes]:
    """The agreed terms and the A-ASSOCIATE-AC PDU that states them.

    ``services`` are the non-storage services' contexts (abstract syntax and the transfer
    syntaxes they take); ``identity_response``: the peer's user identity was verified and it
    asked for a positive response. :class:`ProtocolError` for a request that decoded but
    cannot be answered (pynetdicom validates what it negotiates and encodes: a context without
    an abstract syntax, no Implementation Class UID, an AE title it cannot encode again).
    """
    terms = _Terms(max_pdu, max_operations, accept_unknown, identity_response)
    try:
        return _negotiate(request, services, terms)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ProtocolError(f"cannot answer this A-ASSOCIATE-RQ: {error}") from None


class _Terms(NamedTuple):
    max_pdu: int
    max_operations: int
    accept_unknown: bool
    identity_response: bool


def _negotiate(
    request: Request, services: Sequence[PresentationContext], terms: _Terms
) -> tuple[Agreement, bytes]:
    max_pdu, max_operations, accept_unknown, identity_response = terms
    proposed: list[PresentationContext] = []
    refused: list[PresentationContext] = []
    for context in request.primitive.presentation_context_definition_list:
        abstract = UID(str(context.abstract_syntax))
        if abstract in {c.abstract_syntax for c in services}:
            proposed.append(context)
            continue
        known_storage = abstract in _STORAGE_UIDS
        syntaxes: list[str | bytes | UID] = [
            s for s in context.transfer_syntax if UID(s).is_transfer_syntax
        ]
        if not known_storage and not accept_unknown:
            refused.append(_result(context, ABSTRACT_SYNTAX_NOT_SUPPORTED))
        elif not syntaxes:
            refused.append(_result(context, TRANSFER_SYNTAXES_NOT_SUPPORTED))
        else:
            decodable = PresentationContext()
            decodable.context_id = context.context_id
            decodable.abstract_syntax = context.abstract_syntax
            decodable.transfer_syntax = list(syntaxes)
            proposed.append(decodable)
    roles = {
        item.sop_class_uid: (item.scu_role, item.scp_role)
        for item in request.items(SCP_SCU_RoleSelectionNegotiation)
    }
    # pynetdicom's unrestricted negotiation: its storage-like contexts (storage, unknown and
    # private SOP classes) in their first syntax, the others against the services' contexts.
    results, role_replies = negotiate_unrestricted(proposed, list(services), roles)
    results = sorted(results + refused, key=lambda c: c.context_id or 0)
    asked_window = request.items(AsynchronousOperationsWindowNegotiation)
    operations = 1
    replies: list[Any] = [*role_replies]
    if asked_window:
        invoked = int(asked_window[0].maximum_number_operations_invoked)
        operations = max_operations if invoked == 0 else min(invoked, max_operations)
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked = 1  # we invoke nothing on the peer
        window.maximum_number_operations_performed = operations
        replies.append(window)
    if identity_response:
        # Username (and passcode) identities are confirmed with an empty server response.
        confirmed = UserIdentityNegotiation()
        confirmed.server_response = b""
        replies.append(confirmed)
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = request.primitive.calling_ae_title
    primitive.called_ae_title = request.primitive.called_ae_title
    primitive.result = 0x00
    primitive.result_source = 0x01
    primitive.presentation_context_definition_results_list = results
    primitive.user_information = [
        _maximum_length(max_pdu),
        _implementation_class(),
        _implementation_version(),
        *replies,
    ]
    accept = A_ASSOCIATE_AC()
    accept.from_primitive(primitive)
    encoded = bytes(accept.encode())
    agreement = Agreement(
        calling_ae=request.calling_ae,
        called_ae=request.called_ae,
        contexts={c.context_id or 0: c for c in results if c.result == 0x00},
        peer_max_pdu=int(request.primitive.maximum_length_received or 0),
        operations=operations,
        peer_implementation=str(request.primitive.implementation_class_uid or ""),
        peer_scp_classes=frozenset(str(uid) for uid, (_, scp) in roles.items() if scp),
    )
    return agreement, encoded


def reject_pdu(rejection: tuple[int, int, int]) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.result, primitive.result_source, primitive.diagnostic = rejection
    pdu = A_ASSOCIATE_RJ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _result(context: PresentationContext, result: int) -> PresentationContext:
    answer = PresentationContext()
    answer.context_id = context.context_id
    answer.abstract_syntax = context.abstract_syntax
    answer.transfer_syntax = [context.transfer_syntax[0]]
    answer.result = result
    return answer


def _maximum_length(size: int) -> MaximumLengthNotification:
    item = MaximumLengthNotification()
    item.maximum_length_received = size
    return item


def _implementation_class() -> ImplementationClassUIDNotification:
    item = ImplementationClassUIDNotification()
    item.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    return item


def _implementation_version() -> ImplementationVersionNameNotification:
    item = ImplementationVersionNameNotification()
    item.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    return item
