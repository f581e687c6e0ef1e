"""``store-server audit``: the audit trail the index keeps, newest last."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.cli.studies import since_date
from shared.db.audit import Action, AuditEvent, search
from shared.settings import SettingsError


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = commands.add_parser(
        "audit",
        help="show the audit trail: starts and stops, associations, what was received, "
        "refused, filed, replaced, quarantined, indexed, re-filed, queried, retrieved and "
        "forwarded, account changes, security alerts, sheets written and hooks run",
        description="Show the audit trail the index keeps, oldest of the newest --limit first.",
    )
    audit.add_argument("--since", metavar="DATE", help="on or after DATE (YYYY-MM-DD, UTC)")
    audit.add_argument(
        "--patient",
        metavar="TEXT",
        help="about a patient whose name or ID contains TEXT (their studies, transfers and "
        "exports)",
    )
    audit.add_argument("--study", metavar="UID", help="about one study")
    audit.add_argument("--event", choices=[action.value for action in Action], help="of one kind")
    audit.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    audit.add_argument("--json", action="store_true", help="one JSON array on stdout")
    add_settings_flags(audit)
    audit.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    since: datetime | None = since_date(args.since)
    if args.limit < 1:
        raise SettingsError("--limit: at least 1")

    async def found(engine: AsyncEngine) -> list[AuditEvent]:
        async with engine.connect() as connection:
            return await search(
                connection,
                since=since,
                patient=args.patient,
                study_instance_uid=args.study,
                action=Action(args.event) if args.event else None,
                limit=args.limit,
            )

    events = with_index(settings_from_args(args), found)
    if args.json:
        print(json.dumps([_as_json(event) for event in events], indent=2, default=str))
        return 0
    for event in events:
        subject = event.sop_instance_uid or event.study_instance_uid or ""
        line = f"{event.at.isoformat(timespec='seconds')}  {event.action.value:<20} "
        line += f"{event.service:<10} {' '.join(filter(None, (subject, summary(event))))}"
        print(line.rstrip())
    print(f"{len(events)} event{'s' if len(events) != 1 else ''}")
    return 0


def _as_json(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "event": event.action.value,
        "service": event.service,
        "sop_instance_uid": event.sop_instance_uid,
        "study_instance_uid": event.study_instance_uid,
        "detail": event.detail,
    }


def summary(event: AuditEvent) -> str:
    """The few words of an event's detail that say what happened, for the text listing."""
    detail = event.detail
    action = event.action
    peer = f"{detail.get('calling_ae', '')}@{detail.get('peer_address', '')}"
    if action in (Action.APPLICATION_STARTED, Action.APPLICATION_STOPPED):
        return f"{'+'.join(detail.get('roles', []))} on {detail.get('host', '')}"
    if action is Action.ASSOCIATION_ACCEPTED:
        return f"{peer} -> {detail.get('called_ae', '')}"
    if action in (Action.ASSOCIATION_REFUSED, Action.SECURITY_ALERT):
        what = detail.get("alert", "")
        return f"{what + ' ' if what else ''}{peer}: {detail.get('reason', '')}"
    if action is Action.TRANSFERRED:
        return f"{detail.get('count', 0)} from {peer}, patient {detail.get('patient_id', '')}"
    if action is Action.QUERY:
        keys = ", ".join(f"{k}={v}" for k, v in detail.get("keys", {}).items())
        return f"{detail.get('level', '')} by {peer} ({keys}): {detail.get('matches', 0)}"
    if action is Action.EXPORTED:
        return (
            f"{detail.get('operation', '')} of {detail.get('count', 0)} to "
            f"{detail.get('destination', '')}, patient {detail.get('patient_id', '')}"
        )
    if action is Action.ACCOUNT_CHANGED:
        return f"{detail.get('account', '')} {detail.get('change', '')} by {detail.get('by', '')}"
    return ""
