"""``store-server health [--role ROLE]``: exit code 0 when the process's dependencies answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from services.cli.options import add_settings_flags, settings_from_args
from services.health import ROLE_CHECKS, check


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "health",
        help="check that a service's process works, and what it needs (exit code 0: healthy)",
        description="Check, for container health checks, that the process of a role is alive "
        "and working (its heartbeat), and what it cannot work without: the DICOM port "
        "answers, the broker and the index are reachable, the schema is current, the spool "
        "has disk.",
    )
    command.add_argument(
        "--role",
        choices=sorted(ROLE_CHECKS),
        # A container's image runs any role; its environment says which.
        default=os.environ.get("STORE_SERVER_ROLE", "run"),
        help="the role of the process to check (default: $STORE_SERVER_ROLE, else run)",
    )
    command.add_argument(
        "--instance", help="which of several processes of the role on this host (router@N)"
    )
    command.add_argument("--timeout", type=float, default=5.0, help="seconds per check")
    command.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_settings_flags(command, server=True)
    command.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    results = asyncio.run(check(settings, args.role, args.timeout))
    healthy = all(result.ok for result in results)
    if args.json:
        print(
            json.dumps(
                {
                    "healthy": healthy,
                    "role": args.role,
                    "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results],
                },
                indent=2,
            )
        )
    else:
        for result in results:
            print(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    return 0 if healthy else 1
