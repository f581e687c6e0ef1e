"""``store-server run`` (everything, one process) and ``store-server receiver`` (one service)."""

from __future__ import annotations

import argparse
import asyncio

from services.app import serve
from services.cli.options import add_settings_flags, settings_from_args
from shared.dicom.net import storage
from shared.log import configure_logging
from shared.settings import SettingsError


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "run",
        help="run the whole server in one process",
        description="Run every service in one process: by default on the embedded backends "
        "(in-process bus, SQLite index under the data directory); give --bus and --database "
        "to run on RabbitMQ and PostgreSQL instead.",
    )
    add_settings_flags(run, server=True)
    run.set_defaults(handler=_run)

    receiver = commands.add_parser(
        "receiver",
        help="run the DICOM receiver alone (needs an amqp:// bus)",
        description="Run only the DICOM listener, publishing each instance to RabbitMQ.",
    )
    add_settings_flags(receiver, server=True)
    receiver.set_defaults(handler=_receiver)


def _run(args: argparse.Namespace) -> int:
    return storage(settings_from_args(args))


def _receiver(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.bus.url.startswith("memory://"):
        raise SettingsError(
            "bus.url: the receiver on its own needs an amqp:// bus; memory:// only "
            "connects services inside one `store-server run` process"
        )
    configure_logging(settings.log_file, settings.log.level)
    return asyncio.run(serve(settings, {"receiver"}))
