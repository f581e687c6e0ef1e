"""``store-server sheet STUDY_UID``: write one study's scan sheet now.

The sheet is written directly from the index (no bus needed), exactly as the scan-sheet
service writes it, and recorded as current, so the study monitor does not announce the study
again until a new instance arrives.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from services.app import write_sheet
from services.cli.options import add_settings_flags, settings_from_args, with_index
from services.scansheet import SheetError, UnknownStudy, pdf_unavailable


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sheet = commands.add_parser(
        "sheet",
        help="write a study's scan sheet now",
        description="Write the scan sheet (scansheet.html, .pdf, .png and .json) of an indexed "
        "study into its study folder, without waiting for the study to complete, and print "
        "their paths.",
    )
    sheet.add_argument("uid", metavar="STUDY_UID", help="Study Instance UID")
    sheet.add_argument(
        "--pdf",
        action="store_true",
        help="print the PDF's path only (written even if scansheet.pdf is false)",
    )
    sheet.add_argument(
        "--open",
        action="store_true",
        help="open the sheet (the PDF with --pdf, else the page) with the desktop's viewer",
    )
    sheet.add_argument("--paper", choices=["A4", "Letter"], help="this time, on this paper")
    add_settings_flags(sheet)
    sheet.set_defaults(handler=_sheet)


def _sheet(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    wanted = {"pdf": True} if args.pdf else {}
    if args.paper:
        wanted["paper"] = args.paper
    if wanted:
        changed = settings.scansheet.model_copy(update=wanted)
        settings = settings.model_copy(update={"scansheet": changed})
    try:
        written = with_index(settings, lambda engine: write_sheet(settings, engine, args.uid))
    except (UnknownStudy, ConnectionError) as error:  # ConnectionError is an OSError too
        print(f"store-server sheet: {error}", file=sys.stderr)
        return 1
    except (SheetError, OSError) as error:
        print(f"store-server sheet: cannot write the sheet: {error}", file=sys.stderr)
        return 1
    if args.pdf and (why := pdf_unavailable()) is not None:
        print(f"store-server sheet: --pdf: {why}", file=sys.stderr)
        return 1
    shown = [p for p in written.paths if p.suffix == ".pdf"] if args.pdf else written.paths
    for path in shown:
        print(path)
    return _opened(shown[0]) if args.open else 0


# macOS's, else the freedesktop one (Debian's `open` is openvt, which opens a console).
OPENER = "open" if sys.platform == "darwin" else "xdg-open"


def _opened(path: Path) -> int:
    """Open ``path`` with the desktop's viewer; say so plainly when there is none."""
    opener = shutil.which(OPENER)
    if opener is None:
        print(
            f"store-server sheet: --open: no {OPENER} on this machine; the sheet is {path}",
            file=sys.stderr,
        )
        return 1
    done = subprocess.run([opener, str(path)], check=False)
    if done.returncode != 0:
        print(f"store-server sheet: {opener} {path} failed ({done.returncode})", file=sys.stderr)
        return 1
    return 0
