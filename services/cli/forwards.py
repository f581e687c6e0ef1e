"""``store-server forwards``: what each forwarding rule has sent, is sending, and could not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.forwarder import retry_failed, summary


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    forwards = commands.add_parser(
        "forwards",
        help="show forwarding: per rule and destination, instances pending, failed, done",
        description="Show forwarding: for each rule and destination, how many instances are "
        "pending (waiting for their destination, or being sent), failed (refused, with the "
        "reason) and done; then the latest problems.",
    )
    forwards.add_argument(
        "--retry", action="store_true", help="send the failed instances again (after a fix)"
    )
    forwards.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_settings_flags(forwards)
    forwards.set_defaults(handler=_forwards)


def _forwards(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.retry:
        count = with_index(settings, retry_failed)
        print(f"{count} failed instance{'s' if count != 1 else ''} will be sent again")
        return 0
    found: dict[str, Any] = with_index(settings, summary)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(
        f"{'RULE':<20} {'DESTINATION':<16} {'PENDING':>8} {'SENDING':>8} {'FAILED':>8} {'DONE':>8}"
    )
    for row in found["rules"]:
        print(
            f"{row['rule']:<20} {row['destination']:<16} {row.get('pending', 0):>8} "
            f"{row.get('sending', 0):>8} {row.get('failed', 0):>8} {row.get('done', 0):>8}"
        )
    for problem in found["problems"]:
        print(
            f"{problem['state']}: {problem['sop_instance_uid']} to {problem['destination']} "
            f"({problem['attempts']} attempts): {problem['reason']}"
        )
    return 0
