"""The ``store-server`` console command: one subcommand per module in this package.

Each module exposes ``register(commands)``, which adds its subcommands and sets ``handler``
(a function taking the parsed arguments and returning the exit code) on each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from services.cli import (
    accounts,
    convert,
    database,
    dead_letters,
    health,
    network,
    server,
    sheet,
    studies,
    tags,
)
from shared.log import configure_logging
from shared.process import StartError
from shared.settings import SettingsError

COMMAND_MODULES: tuple[ModuleType, ...] = (
    server,
    database,
    accounts,
    studies,
    sheet,
    dead_letters,
    health,
    tags,
    convert,
    network,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="store-server",
        description="DICOM store server and toolkit.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings and errors of one-shot commands go to stderr; servers log fully once started.
    configure_logging(None, "warning", sys.stderr)
    try:
        exit_code: int = args.handler(args)
    except SettingsError as error:
        print(f"store-server {args.command}: {error}", file=sys.stderr)
        return 2
    except (ConnectionError, StartError) as error:  # no database or broker, a busy data dir
        print(f"store-server {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
