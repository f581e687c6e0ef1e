"""``store-server tags``: show a file's tags, or edit them into a new file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from pydicom.tag import BaseTag

from shared.dicom.tag_edits import EditError, TagChange, backup_of, write_tags
from shared.dicom.tags import DataElementText, TagError, get_tag, load_tags, parse_tag


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "tags",
        help="show or edit the tags of a DICOM file",
        description="Show every tag of FILE (or only the TAGs named), or edit them with "
        "--set/--remove. TAG is a keyword (PatientName) or a number (0010,0010). As dcmdump, "
        "pixel data and other bulk values are shown by VR and length, and each sequence item "
        "where it begins; FILE may lack the 128-byte preamble.",
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "tags", nargs="*", type=_tag, metavar="TAG", help="only these top-level tags"
    )
    parser.add_argument(
        "--set",
        type=_set_change,
        action="append",
        default=[],
        metavar="TAG=VALUE",
        help="set or add a tag (repeatable); backslash separates values; "
        "a private tag takes its VR as TAG:VR=VALUE",
    )
    parser.add_argument(
        "--remove",
        type=_tag,
        action="append",
        default=[],
        metavar="TAG",
        help="remove a tag (repeatable)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="OUT", help="write edits here (default: in place)"
    )
    parser.add_argument(
        "--no-backup",
        action="store_true",
        help="edit in place without keeping the original as FILE.bak",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts: one entry per element and item, with tag, keyword, vr, "
        "value, depth, kind (element, bulk or item), length and fragments of bulk values",
    )
    parser.set_defaults(handler=run_tags)


def run_tags(args: argparse.Namespace) -> int:
    try:
        if args.set or args.remove:
            _edit(args)
            return 0
        if args.tags:
            elements = [get_tag(args.file, tag.group, tag.element) for tag in args.tags]
        else:
            elements = load_tags(args.file)
    except EditError as error:  # the file is fine; what was asked of it is not
        print(f"store-server tags: {error}", file=sys.stderr)
        return 2
    except TagError as error:
        print(f"store-server tags: {error}", file=sys.stderr)
        return 1
    try:
        _print(elements, as_json=args.json)
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit flush quiet
    return 0


def _edit(args: argparse.Namespace) -> None:
    """Write the edits; the original of a file edited in place is kept unless --no-backup."""
    changes = [*args.set, *(TagChange(tag, None) for tag in args.remove)]
    written = write_tags(args.file, changes, args.output, backup=not args.no_backup)
    in_place = written.resolve() == args.file.resolve()
    backup = backup_of(args.file) if in_place and not args.no_backup else None
    if args.json:
        shown = str(backup) if backup else None
        print(json.dumps({"written": str(written), "changes": len(changes), "backup": shown}))
        return
    counted = f"{len(changes)} change{'s' * (len(changes) != 1)}"
    kept = f"; the original is in {backup}" if backup else ""
    print(f"wrote {written} ({counted}){kept}")


def _tag(text: str) -> BaseTag:
    try:
        return parse_tag(text)
    except TagError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _set_change(text: str) -> TagChange:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TAG=VALUE")
    name, _, vr = name.partition(":")
    return TagChange(_tag(name), value, vr.strip() or None)


def _print(elements: list[DataElementText], *, as_json: bool) -> None:
    """One line per entry, indented by its depth as dcmdump indents; or a JSON array of the
    entries' fields (see :class:`DataElementText`)."""
    if as_json:
        print(json.dumps([asdict(element) for element in elements], ensure_ascii=False))
        return
    for element in elements:
        label = " ".join(part for part in (element.tag, element.vr, element.keyword) if part)
        print(f"{'  ' * element.depth}{label}: {element.value}")
