"""``store-server sheet STUDY_UID``: write one study's scan sheet now.

The sheet is written directly from the index (no bus needed), exactly as the scan-sheet
service writes it, and recorded as current, so the study monitor does not announce the study
again until a new instance arrives.
"""

from __future__ import annotations

import argparse
import sys

from services.app import write_sheet
from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.scansheet import SheetError, UnknownStudy


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sheet = commands.add_parser(
        "sheet",
        help="write a study's scan sheet now",
        description="Write the scan sheet (scansheet.html, .png and .json) of an indexed study "
        "into its study folder, without waiting for the study to complete.",
    )
    sheet.add_argument("uid", metavar="STUDY_UID", help="Study Instance UID")
    add_settings_flags(sheet)
    sheet.set_defaults(handler=_sheet)


def _sheet(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        written = with_index(settings, lambda engine: write_sheet(settings, engine, args.uid))
    except (UnknownStudy, ConnectionError) as error:  # ConnectionError is an OSError too
        print(f"store-server sheet: {error}", file=sys.stderr)
        return 1
    except (SheetError, OSError) as error:
        print(f"store-server sheet: cannot write the sheet: {error}", file=sys.stderr)
        return 1
    for path in written.paths:
        print(path)
    return 0
