"""Who may associate: calling AE allowlist (optionally per host), called AE, the certificate
an AE title is bound to (``receiver.tls.subjects``), user identity, association limits (in
all, and per peer address).

Checked when an association is requested, so a refusal is logged with its reason before the
listener answers; the A-ASSOCIATE-RJ carries the matching PS3.8 diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.receiver.settings import AllowedCaller, ReceiverSettings

# (result, source, diagnostic) of an A-ASSOCIATE-RJ, PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_CALLED_AE = (0x01, 0x01, 0x07)
REJECT_BUSY = (0x02, 0x03, 0x02)  # transient, local limit exceeded
REJECT_USER = (0x01, 0x01, 0x01)  # permanent, no reason given (PS3.7 D.3.3.7)
USERNAME = 1
USERNAME_AND_PASSCODE = 2


@dataclass(frozen=True)
class UserIdentity:
    """A User Identity Negotiation sub-item as requested (PS3.7 D.3.3.7)."""

    kind: int
    primary: bytes
    secondary: bytes = b""


@dataclass(frozen=True)
class Refusal:
    reason: str
    rejection: tuple[int, int, int]
    alert: str | None = None  # the security alert it is, if one: a stranger, not a busy AE


def allows(caller: AllowedCaller, ae_title: str, host: str) -> bool:
    """Whether ``caller`` (an entry of ``receiver.allowed_callers``) admits this peer."""
    return caller.ae_title == ae_title.strip() and (caller.host is None or caller.host == host)


def check_association(
    settings: ReceiverSettings,
    *,
    calling_ae: str,
    called_ae: str,
    peer_address: str,
    active_associations: int,
    peer_associations: int = 1,
    user: UserIdentity | None = None,
    certificate: str | None = None,
) -> Refusal | None:
    """Why this association must be refused, or ``None`` to accept it.

    ``active_associations`` and ``peer_associations`` count this one, in all and from
    ``peer_address``; ``certificate``: the Common Name of the peer's verified certificate,
    None on the plain port or without one.
    """
    callers = settings.allowed_callers
    if callers and not any(allows(caller, calling_ae, peer_address) for caller in callers):
        known = any(caller.ae_title == calling_ae.strip() for caller in callers)
        reason = (
            f"calling AE title {calling_ae.strip()!r} is not allowed from {peer_address}"
            if known
            else f"calling AE title {calling_ae.strip()!r} is not in receiver.allowed_callers"
        )
        return Refusal(reason, REJECT_CALLING_AE, "unknown_ae")
    bound = certificate_refusal(settings.tls.subjects, calling_ae.strip(), certificate)
    if bound is not None:
        return Refusal(bound, REJECT_CALLING_AE, "certificate")
    if settings.require_called_ae and called_ae.strip() != settings.ae_title:
        return Refusal(
            f"called AE title {called_ae.strip()!r} is not ours ({settings.ae_title!r})",
            REJECT_CALLED_AE,
        )
    if settings.user_identities and not identified(settings.user_identities, user):
        shown = "none" if user is None else f"type {user.kind}"
        reason = f"user identity ({shown}) is not in receiver.user_identities"
        return Refusal(reason, REJECT_USER, "user_identity")
    if active_associations > settings.max_associations:
        return Refusal(
            f"{active_associations - 1} associations already open "
            f"(receiver.max_associations = {settings.max_associations})",
            REJECT_BUSY,
        )
    if peer_associations > settings.max_associations_per_peer:
        return Refusal(
            f"{peer_associations - 1} associations already open from {peer_address} "
            f"(receiver.max_associations_per_peer = {settings.max_associations_per_peer})",
            REJECT_BUSY,
        )
    return None


def certificate_refusal(
    subjects: dict[str, str], calling_ae: str, certificate: str | None
) -> str | None:
    """Why this calling AE title may not call with this certificate (or without one)."""
    wanted = subjects.get(calling_ae)
    if wanted is not None and certificate is None:
        return f"calling AE title {calling_ae!r} must call over TLS with its certificate"
    if wanted is not None and certificate != wanted:
        return (
            f"calling AE title {calling_ae!r} must present the certificate of {wanted!r}, "
            f"not of {certificate!r}"
        )
    owners = sorted(ae for ae, name in subjects.items() if name == certificate)
    if certificate is not None and owners and calling_ae not in owners:
        bound_to = ", ".join(owners)
        return f"the certificate of {certificate!r} is bound to {bound_to}, not {calling_ae!r}"
    return None


def identified(known: list[str], user: UserIdentity | None) -> bool:
    """Whether ``user`` is one of ``receiver.user_identities`` (``name`` or ``name:passcode``);
    only username and username-with-passcode identities can be checked here."""
    if user is None or user.kind not in (USERNAME, USERNAME_AND_PASSCODE):
        return False
    name = user.primary.decode("utf-8", "replace")
    passcode = user.secondary.decode("utf-8", "replace")
    for entry in known:
        wanted, has_passcode, wanted_passcode = entry.partition(":")
        if wanted != name:
            continue
        if not has_passcode or (user.kind == USERNAME_AND_PASSCODE and passcode == wanted_passcode):
            return True
    return False
