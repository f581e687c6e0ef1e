"""``store-server dead-letters ROLE [--requeue]``: what a consumer gave up on, and giving it
back once the cause is mended (a missing folder made, a database restored, a bug fixed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from services.cli.options import add_settings_flags, settings_from_args
from services.settings import Settings, SettingsError
from shared.bus import TOPOLOGY, DeadLetter, open_bus
from shared.hosts import check_host_name


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "dead-letters",
        help="list a consumer's dead letters, or requeue them (RabbitMQ)",
        description="List the messages a consumer gave up on, with the reason, or give them "
        "back to its workers with --requeue. The in-process bus of `store-server run` keeps "
        "no dead letters across a restart: there, the spool and the audit trail are "
        "re-read at start-up instead.",
    )
    command.add_argument("role", choices=[consumer.role for consumer in TOPOLOGY])
    command.add_argument("--requeue", action="store_true", help="give them back to the workers")
    command.add_argument("--json", action="store_true", help="one JSON array on stdout")
    add_settings_flags(command)
    command.set_defaults(handler=_dead_letters)


async def _work(settings: Settings, role: str, requeue: bool) -> list[DeadLetter] | int:
    bus = open_bus(settings.bus)
    await bus.start()
    try:
        return await bus.requeue_dead_letters(role) if requeue else await bus.dead_letters(role)
    finally:
        await bus.close()


def _dead_letters(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.bus.url.startswith("memory://"):
        raise SettingsError("bus.url: dead letters are kept by RabbitMQ; give an amqp:// bus")
    check_host_name("bus.url", settings.bus.url)
    outcome = asyncio.run(_work(settings, args.role, args.requeue))
    if isinstance(outcome, int):
        print(f"{outcome} message(s) given back to the {args.role}")
        return 0
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "routing_key": letter.routing_key,
                        "reason": letter.reason,
                        "attempts": letter.attempts,
                        "dead_at": letter.dead_at.isoformat() if letter.dead_at else None,
                        "body": letter.body.decode("utf-8", "replace"),
                    }
                    for letter in outcome
                ],
                indent=2,
            )
        )
        return 0
    for letter in outcome:
        when = letter.dead_at.isoformat(timespec="seconds") if letter.dead_at else "?"
        print(f"{when}\t{letter.routing_key}\t{letter.attempts}\t{letter.reason}")
    print(f"{len(outcome)} dead letter(s) for the {args.role}", file=sys.stderr)
    return 0
