"""``store-server accounts add|list|remove|alias``: the accounts studies are filed into."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.router import (
    AccountError,
    add_account,
    add_alias,
    list_accounts,
    remove_account,
)

T = TypeVar("T")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    accounts = commands.add_parser("accounts", help="manage the accounts studies are filed into")
    actions = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument(
        "--physician",
        action="append",
        default=[],
        metavar="FAMILY^GIVEN",
        help="a physician name (DICOM PN) the account answers to; repeat for aliases",
    )
    add.add_argument("--home", type=_home, help="default: <data-dir>/accounts/NAME")
    add.add_argument(
        "--owner", type=_owner, metavar="UID:GID", help="owner of filed files (as root)"
    )
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list the accounts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)

    remove = actions.add_parser("remove", help="remove an account (its files stay)")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    alias = actions.add_parser("alias", help="add a physician name to an account")
    alias.add_argument("name")
    alias.add_argument("physician", metavar="FAMILY^GIVEN")
    alias.set_defaults(handler=_alias)

    for parser in (add, listing, remove, alias):
        add_settings_flags(parser)


def _in_index(args: argparse.Namespace, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def in_transaction(engine: AsyncEngine) -> T:
        async with engine.begin() as connection:
            return await work(connection)

    return with_index(settings_from_args(args), in_transaction)


def _home(text: str) -> Path:
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return Path(text)


def _owner(text: str) -> tuple[int, int | None]:
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid) if gid else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected UID or UID:GID numbers") from None


def _reported(action: Callable[[], int]) -> int:
    try:
        return action()
    except AccountError as error:
        print(f"store-server accounts: {error}", file=sys.stderr)
        return 1


def _add(args: argparse.Namespace) -> int:
    def action() -> int:
        uid, gid = args.owner or (None, None)
        home = args.home.resolve() if args.home else None

        async def work(connection: AsyncConnection) -> None:
            await add_account(
                connection, args.name, args.physician, home=home, owner_uid=uid, owner_gid=gid
            )

        _in_index(args, work)
        print(f"account {args.name} added")
        return 0

    return _reported(action)


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    accounts = _in_index(args, list_accounts)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": a.name,
                        "home": str(a.home_under(settings.accounts_dir)),
                        "physicians": list(a.physicians),
                        "owner_uid": a.owner_uid,
                        "owner_gid": a.owner_gid,
                    }
                    for a in accounts
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    for account in accounts:
        names = "; ".join(account.physicians) or "(no physician names)"
        print(f"{account.name}\t{account.home_under(settings.accounts_dir)}\t{names}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    def action() -> int:
        async def work(connection: AsyncConnection) -> None:
            await remove_account(connection, args.name)

        _in_index(args, work)
        print(f"account {args.name} removed; its files are left where they are")
        return 0

    return _reported(action)


def _alias(args: argparse.Namespace) -> int:
    def action() -> int:
        async def work(connection: AsyncConnection) -> None:
            await add_alias(connection, args.name, args.physician)

        _in_index(args, work)
        print(f"{args.physician} now files into account {args.name}")
        return 0

    return _reported(action)
