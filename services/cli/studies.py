"""``store-server studies`` (the study list) and ``store-server study UID`` (one study)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli.options import add_settings_flags, settings_from_args, with_index
from shared.db.studies import (
    StudyDetail,
    StudySummary,
    list_studies,
    middle_instance,
    study_detail,
)
from shared.dicom.parameters import parameters_line, series_parameters
from shared.settings import SettingsError


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    listing = commands.add_parser(
        "studies",
        help="list the indexed studies, most recently received first",
        description="List the indexed studies, most recently received first.",
    )
    listing.add_argument("--account", help="only this account's studies")
    listing.add_argument("--patient", metavar="TEXT", help="patient name or ID contains TEXT")
    listing.add_argument(
        "--since", metavar="DATE", help="received on or after DATE (YYYY-MM-DD, UTC)"
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="one JSON array on stdout")
    add_settings_flags(listing)
    listing.set_defaults(handler=_studies)

    one = commands.add_parser(
        "study",
        help="show one study with its series",
        description="Show one study: patient, study attributes, and each series with its "
        "instance count and acquisition parameters.",
    )
    one.add_argument("uid", metavar="UID", help="Study Instance UID")
    one.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_settings_flags(one)
    one.set_defaults(handler=_study)


def since_date(text: str | None) -> datetime | None:
    if text is None:
        return None
    for layout in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise SettingsError(f"--since: not a date (YYYY-MM-DD): {text!r}")


async def _listed(engine: AsyncEngine, args: argparse.Namespace) -> list[StudySummary]:
    async with engine.connect() as connection:
        return await list_studies(
            connection,
            account=args.account,
            patient=args.patient,
            since=since_date(args.since),
            limit=args.limit,
        )


@dataclass(frozen=True)
class _Shown:
    """A study and, in the order of its series, each series' parameters as the sheet has them."""

    detail: StudyDetail
    parameters: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        shown = self.detail.as_json()
        shown["series"] = [
            {**one, "parameters": parameters}
            for one, parameters in zip(self.detail.series, self.parameters, strict=True)
        ]
        return shown


async def _detail(engine: AsyncEngine, uid: str) -> _Shown | None:
    async with engine.connect() as connection:
        detail = await study_detail(connection, uid)
        if detail is None:
            return None
        parameters = []
        for one in detail.series:
            middle = await middle_instance(connection, one["series_instance_uid"])
            parameters.append(series_parameters(one, middle.header))
        return _Shown(detail, parameters)


def _studies(args: argparse.Namespace) -> int:
    since_date(args.since)  # a bad date is reported before connecting
    found = with_index(settings_from_args(args), lambda engine: _listed(engine, args))
    if args.json:
        print(json.dumps([study.as_json() for study in found], indent=2))
        return 0
    rows = [
        [
            study.study_date or "",
            (study.patient_name or "")[:28],
            study.patient_id or "",
            (study.description or "")[:32],
            study.modalities or "",
            f"{study.series_count}/{study.instance_count}",
            study.account or "",
            _moment(study.last_received_at),
            study.study_instance_uid,
        ]
        for study in found
    ]
    header = ["DATE", "PATIENT", "ID", "DESCRIPTION", "MOD", "SER/INST", "ACCOUNT"]
    _table([*header, "LAST RECEIVED", "STUDY UID"], rows)
    print(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'}")
    return 0


def _study(args: argparse.Namespace) -> int:
    shown = with_index(settings_from_args(args), lambda engine: _detail(engine, args.uid))
    if shown is None:
        print(f"store-server study: no study {args.uid} in the index", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(shown.as_json(), indent=2))
        return 0
    detail = shown.detail
    study, patient = detail.study, detail.patient
    print(f"Study      {study.study_instance_uid}")
    print(f"Patient    {patient['name'] or ''} ({patient['id'] or 'no ID'})")
    print(f"Date       {study.study_date or ''} {study.study_time or ''}")
    print(f"Desc.      {study.description or ''}   Accession {study.accession_number or ''}")
    for name, value in detail.attributes.items():
        print(f"{name.replace('_', ' ').capitalize():<22} {value or ''}")
    print(f"Account    {study.account or ''}   Folder {study.study_folder or ''}")
    print(f"Received   {_moment(study.first_received_at)} .. {_moment(study.last_received_at)}")
    for name, values in detail.conflicts.items():
        print(f"Disagreed  {name}: also {', '.join(values)}")
    print(f"{study.series_count} series, {study.instance_count} instances")
    _table(
        ["#", "DESCRIPTION", "MOD", "N", "PARAMETERS"],
        [
            [
                _value(one["number"]),
                (one["description"] or "")[:30],
                one["modality"] or "",
                _value(one["instance_count"]),
                parameters_line(parameters),
            ]
            for one, parameters in zip(detail.series, shown.parameters, strict=True)
        ],
    )
    return 0


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _moment(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        cells = (str(cell).ljust(width) for cell, width in zip(line, widths, strict=False))
        print("  ".join(cells).rstrip())
