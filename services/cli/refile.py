"""``store-server refile STUDY_UID | --all-guests``: move studies to the account the filing
chain gives now, typically after ``accounts add`` for a physician whose studies went to
``Guest/<name>``. Safe to interrupt and to run again (see :mod:`services.router.refile`)."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from services.app import write_sheet
from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.router import Refiled, RefileError, Refiling
from services.scansheet import SheetError, UnknownStudy
from services.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "refile",
        help="move studies to the account their physician has now",
        description="Move a study (or every study under Guest/ and Unknown) to the account "
        "the filing chain gives now, keeping its folder and file names; the claims, the index "
        "and the scan sheet follow, and the move is audited. Safe to interrupt and to run "
        "again.",
    )
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("uid", nargs="?", metavar="STUDY_UID", help="Study Instance UID")
    which.add_argument(
        "--all-guests",
        action="store_true",
        help="every study filed under Guest/<name> or Unknown (and any re-file cut short)",
    )
    add_settings_flags(command)
    command.set_defaults(handler=_refile)


async def _work(settings: Settings, engine: AsyncEngine, args: argparse.Namespace) -> int:
    refiling = Refiling(settings.router, settings.paths, engine)
    uids = await refiling.guest_studies() if args.all_guests else [args.uid]
    failed = moved = 0
    for uid in uids:
        try:
            refiled = await refiling.refile(uid)
        except RefileError as error:
            print(f"store-server refile: {error}", file=sys.stderr)
            failed += 1
            continue
        if refiled is None:
            if not args.all_guests:
                print(f"{uid}: already in the account its physician has")
            continue
        moved += 1
        print(_moved(refiled))
        if refiled.sheet:
            await _rewrite_sheet(settings, engine, uid)
    if args.all_guests:
        print(f"{moved} stud{'y' if moved == 1 else 'ies'} re-filed, {failed} not")
    return 1 if failed else 0


def _moved(refiled: Refiled) -> str:
    move = refiled.move
    return (
        f"{move.study_instance_uid}: {move.from_account}/{move.from_folder} -> "
        f"{move.to_account}/{move.to_folder} ({refiled.files} files)"
    )


async def _rewrite_sheet(settings: Settings, engine: AsyncEngine, uid: str) -> None:
    """The sheet names the account and folder: write it again now, as the service would."""
    try:
        await write_sheet(settings, engine, uid)
    except (UnknownStudy, SheetError, OSError) as error:
        # The study monitor writes it at its next look: the re-file marked it due.
        print(f"store-server refile: {uid}: sheet left to the scan-sheet service: {error}")


def _refile(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    return with_index(settings, lambda engine: _work(settings, engine, args))
