"""Who may associate: calling AE allowlist (optionally per host), called AE, association limit.

Checked when an association is requested, so a refusal is logged with its reason before
pynetdicom answers; the A-ASSOCIATE-RJ carries the matching PS3.8 diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.receiver.settings import AllowedCaller, ReceiverSettings

# (result, source, diagnostic) of an A-ASSOCIATE-RJ, PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_CALLED_AE = (0x01, 0x01, 0x07)
REJECT_BUSY = (0x02, 0x03, 0x02)  # transient, local limit exceeded


@dataclass(frozen=True)
class Refusal:
    reason: str
    rejection: tuple[int, int, int]


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
) -> Refusal | None:
    """Why this association must be refused, or ``None`` to accept it."""
    callers = settings.allowed_callers
    if callers and not any(allows(caller, calling_ae, peer_address) for caller in callers):
        known = any(caller.ae_title == calling_ae.strip() for caller in callers)
        reason = (
            f"calling AE title {calling_ae.strip()!r} is not allowed from {peer_address}"
            if known
            else f"calling AE title {calling_ae.strip()!r} is not in receiver.allowed_callers"
        )
        return Refusal(reason, REJECT_CALLING_AE)
    if settings.require_called_ae and called_ae.strip() != settings.ae_title:
        return Refusal(
            f"called AE title {called_ae.strip()!r} is not ours ({settings.ae_title!r})",
            REJECT_CALLED_AE,
        )
    if active_associations > settings.max_associations:
        return Refusal(
            f"{active_associations - 1} associations already open "
            f"(receiver.max_associations = {settings.max_associations})",
            REJECT_BUSY,
        )
    return None
