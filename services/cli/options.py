"""Flags shared by the subcommands, and the settings they build."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.app import redact
from services.settings import Settings, load_settings
from shared.db.engine import open_index
from shared.files import file_error_reason
from shared.hosts import check_host_name
from shared.settings import AETitle

T = TypeVar("T")
_AE_TITLE: TypeAdapter[str] = TypeAdapter(AETitle)


class CommandFailed(Exception):
    """A failure a command reports as one line, with exit code 1."""


def port_number(text: str) -> int:
    """An argparse type: a TCP port to connect to or listen on."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def positive_number(text: str) -> float:
    """An argparse type: a number above zero (seconds, a size)."""
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above zero")
    return number


def positive_integer(text: str) -> int:
    """An argparse type: a whole number above zero (pixels, a size)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above zero")
    return int(text)


def ae_title(text: str) -> str:
    """An argparse type: an AE title as PS3.5 allows it."""
    try:
        return _AE_TITLE.validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: an AE title is 1 to 16 printable characters without a backslash"
        ) from None


def add_settings_flags(
    parser: argparse.ArgumentParser, *, server: bool = False, scansheet: bool = False
) -> None:
    """``--config``, ``--data-dir``, ``--bus``, ``--database``; with ``server``, the
    listener's; with ``scansheet``, the study monitor's ``--stable-age``."""
    group = parser.add_argument_group("settings (flags > STORE_SERVER_* environment > --config)")
    group.add_argument("--config", type=Path, help="TOML settings file")
    group.add_argument("--data-dir", type=Path, help="data directory (default: ./data)")
    group.add_argument("--bus", metavar="URL", help="memory:// (default) or amqp://user:pw@host/")
    group.add_argument(
        "--database", metavar="URL", help="sqlite:///path (default) or postgresql://..."
    )
    group.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    if server:
        # Checked with the settings, so that a wrong value is named as the setting it sets.
        group.add_argument("--port", type=int, help="DICOM port (default 11112)")
        group.add_argument("--ae-title", help="our AE title (default STORE_SERVER)")
        group.add_argument("--host", help="bind address (default 0.0.0.0)")
    if scansheet:
        group.add_argument(
            "--stable-age",
            type=float,
            metavar="SECONDS",
            help="a study with no new instance for this long is complete (default 60)",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings for this invocation: flags given on the command line win."""
    overrides: dict[str, Any] = {}
    receiver: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "bus", None) is not None:
        overrides["bus"] = {"url": args.bus}
    if getattr(args, "database", None) is not None:
        overrides["database"] = {"url": args.database}
    if getattr(args, "log_level", None) is not None:
        overrides["log"] = {"level": args.log_level}
    if getattr(args, "instance", None) is not None:
        overrides["instance"] = args.instance
    for flag, field in (("port", "port"), ("ae_title", "ae_title"), ("host", "host")):
        if getattr(args, flag, None) is not None:
            receiver[field] = getattr(args, flag)
    if receiver:
        overrides["receiver"] = receiver
    if getattr(args, "stable_age", None) is not None:
        overrides["scansheet"] = {"stable_age": args.stable_age}
    return load_settings(getattr(args, "config", None), overrides)


def with_index(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open the index the server uses (migrating it if need be), run ``work``, close it."""
    check_host_name("database.url", settings.database_url)

    async def run() -> T:
        try:
            engine = await open_index(settings.database_url, settings.database.connect_timeout)
        except OSError as error:
            raise index_unusable(settings, error) from None
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def index_unusable(settings: Settings, error: OSError) -> OSError | CommandFailed:
    """What to raise when the index cannot be opened: an unreachable database as it is, an
    index file that cannot be made (its folder missing or not writable) as a failure."""
    if isinstance(error, ConnectionError):
        return error
    where = f" ({error.filename})" if error.filename else ""
    reason = file_error_reason(error)
    index = redact(settings.database_url)
    return CommandFailed(f"cannot open the index {index}: {reason}{where}")
