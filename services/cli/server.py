"""``store-server run`` (everything, one process) and one command per service."""

from __future__ import annotations

import argparse
import asyncio

from services.app import STARTERS, serve, storage
from services.cli.options import add_settings_flags, settings_from_args
from shared.settings import SettingsError

SERVICE_HELP = {
    "receiver": "the DICOM listener, publishing each instance to RabbitMQ",
    "router": "one router worker: files received instances into their accounts",
    "indexer": "one indexer worker: indexes filed instances in the database",
    "scansheet": "one scan-sheet worker: writes the sheet of each completed study",
    "forwarder": "one forwarder: sends instances and studies on to other nodes by rule",
}


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "run",
        help="run the whole server in one process",
        description="Run every service in one process: by default on the embedded backends "
        "(in-process bus, SQLite index under the data directory); give --bus and --database "
        "to run on RabbitMQ and PostgreSQL instead.",
    )
    add_settings_flags(run, server=True, scansheet=True)
    run.set_defaults(handler=_run)

    for role in STARTERS:
        service = commands.add_parser(
            role,
            help=f"run {SERVICE_HELP[role]} (needs an amqp:// bus)",
            description=f"Run {SERVICE_HELP[role]}, on its own, as one process of many.",
        )
        add_settings_flags(service, server=role == "receiver", scansheet=role == "scansheet")
        service.set_defaults(handler=_one_service, role=role)


def _run(args: argparse.Namespace) -> int:
    return storage(settings_from_args(args))


def _one_service(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.bus.url.startswith("memory://"):
        raise SettingsError(
            f"bus.url: the {args.role} on its own needs an amqp:// bus; memory:// only "
            "connects services inside one `store-server run` process"
        )
    return asyncio.run(serve(settings, {args.role}))
