"""``store-server db upgrade|current``: the index schema, by Alembic migration, and the
read-only role of the receiver's queries (:mod:`shared.db.grants`)."""

from __future__ import annotations

import argparse
import asyncio

from services.cli.options import (
    add_settings_flags,
    index_unusable,
    settings_from_args,
)
from services.settings import Settings
from shared.db.engine import create_engine, current_revision, upgrade, wait_for_database
from shared.db.grants import grant_query_role
from shared.hosts import check_host_name


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    database = commands.add_parser("db", help="manage the index database schema")
    actions = database.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="apply the migrations (also done at start-up)")
    up.add_argument("revision", nargs="?", default="head")
    add_settings_flags(up)
    up.set_defaults(handler=_upgrade)
    current = actions.add_parser("current", help="print the schema revision of the index")
    add_settings_flags(current)
    current.set_defaults(handler=_current)


async def _revision_after(settings: Settings, target: str | None) -> str | None:
    check_host_name("database.url", settings.database_url)
    try:
        engine = create_engine(settings.database_url)
    except OSError as error:
        raise index_unusable(settings, error) from None
    try:
        await wait_for_database(engine, settings.database.connect_timeout)
        if target is None:
            return await current_revision(engine)
        revision = await upgrade(engine, target)
        role, password = settings.database.query_role, settings.database.query_password
        granted = role is not None and password is not None
        if granted and not await grant_query_role(engine, str(role), str(password)):
            print("database.query_role: SQLite has no roles; ignored (queries read it read-only)")
        return revision
    finally:
        await engine.dispose()


def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    revision = asyncio.run(_revision_after(settings, args.revision))
    print(f"index at revision {revision}")
    return 0


def _current(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    revision = asyncio.run(_revision_after(settings, None))
    print(revision or "empty (no migrations applied)")
    return 0
