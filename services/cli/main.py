"""The ``store-server`` console command: one subcommand per module in this package.

Each module exposes ``register(commands)``, which adds its subcommands and sets ``handler``
(a function taking the parsed arguments and returning the exit code) on each.

A command reports a problem as one line on stderr, ``store-server COMMAND: ...``, and exits 2
for a usage error (a malformed argument) or 1 for a failure. An exception no command expected
is a bug: it gets the same one line, and its traceback with ``STORE_SERVER_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import NoReturn

from services.cli import (
    accounts,
    audit,
    convert,
    database,
    dead_letters,
    forwards,
    health,
    network,
    refile,
    server,
    sheet,
    studies,
    tags,
)
from services.cli.options import CommandFailed
from shared.log import configure_logging
from shared.process import StartError
from shared.settings import SettingsError

COMMAND_MODULES: tuple[ModuleType, ...] = (
    server,
    database,
    accounts,
    refile,
    studies,
    sheet,
    dead_letters,
    forwards,
    audit,
    health,
    tags,
    convert,
    network,
)


class CommandParser(argparse.ArgumentParser):
    """Reports a usage error in one line, as the commands report theirs, instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="store-server",
        description="DICOM store server and toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"store-server {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = os.environ.get("STORE_SERVER_DEBUG", "") not in ("", "0")
    # Warnings and errors of one-shot commands go to stderr; servers log fully once started.
    configure_logging(None, "warning", sys.stderr)
    if not debug and args.handler.__module__ != server.__name__:
        _quiet_libraries()
    try:
        exit_code: int = args.handler(args)
    except SettingsError as error:
        print(f"store-server {args.command}: {error}", file=sys.stderr)
        return 2
    except (ConnectionError, StartError, CommandFailed) as error:  # no database, a busy data dir
        print(f"store-server {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if debug:
            traceback.print_exc()
        else:
            print(
                f"store-server {args.command}: unexpected error: {type(error).__name__}: "
                f"{' '.join(str(error).split())} (set STORE_SERVER_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        return 1
    return exit_code


def _version() -> str:
    try:
        return version("store-server")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


# Libraries that log a failure the command reports itself: pynetdicom over several lines,
# some with a traceback; aiormq once more for each broker connection that fails.
_REPORTED_BY_THE_COMMAND = ("pynetdicom", "aiormq")


def _quiet_libraries() -> None:
    """Keep the libraries' own words off a one-shot command's stderr: their log records of
    failures the command says in one line of its own, and Python warnings (a picture's
    corrupt EXIF, a value pydicom finds odd), which are about the input the command judges."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: not record.name.startswith(_REPORTED_BY_THE_COMMAND))
    warnings.simplefilter("ignore")


if __name__ == "__main__":
    sys.exit(main())
