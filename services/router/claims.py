"""The router's claims in the database, made before any file moves.

A study is bound to one account and folder, a series to one folder in its study, an instance
to one file name, by inserting rows whose unique constraints settle races between routers:
an insert that conflicts does nothing, and the row that won is read back. Everything for one
instance is claimed in one transaction, in the same order (study, series, instance), so
concurrent routers never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.router.naming import folder_key, instance_file, with_suffix
from shared.db.schema import placements, series_bindings, study_bindings

# A claim loops only when another router's claim won a race; a handful of rounds settle it.
MAX_RACES = 100


@dataclass(frozen=True)
class StudyBinding:
    account: str
    study_folder: str
    created: bool


@dataclass(frozen=True)
class Placement:
    path: str
    spool_name: str
    created: bool


async def _insert_if_absent(connection: AsyncConnection, table: sa.Table, **values: Any) -> bool:
    """Insert unless a unique constraint holds such a row already; True when inserted."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
    result = await connection.execute(statement)
    return bool(result.rowcount)


async def _free_name(
    connection: AsyncConnection, table: sa.Table, scope: str, scope_value: str, wanted: str
) -> str:
    """The first of ``wanted``, ``wanted_2``, ... whose key no sibling folder holds: one
    query however many alike names there are (a series per image, all named the same)."""
    key = folder_key(wanted)
    taken = set(
        await connection.scalars(
            sa.select(table.c.folder_key).where(
                table.c[scope] == scope_value,
                table.c.folder_key.startswith(key, autoescape=True),
            )
        )
    )
    attempt = 1
    while folder_key(with_suffix(wanted, attempt)) in taken:
        attempt += 1
    return with_suffix(wanted, attempt)


async def claim_study(
    connection: AsyncConnection, study_uid: str, account: str, folder: str, *, respell: bool
) -> StudyBinding:
    """The study's binding: an existing one, or ``account``/``folder`` (suffixed on a clash).

    With ``respell`` (``account`` is a folder such as ``Guest/<name>``, not an account), a
    new binding takes the spelling such a folder already has (:func:`account_spelling`).
    """
    for attempt in range(MAX_RACES):
        bound = await study_binding(connection, study_uid)
        if bound is not None:
            return bound
        if respell and attempt == 0:
            account = await account_spelling(connection, account)
        name = await _free_name(connection, study_bindings, "account", account, folder)
        if await _insert_if_absent(
            connection,
            study_bindings,
            study_instance_uid=study_uid,
            account=account,
            study_folder=name,
            folder_key=folder_key(name),
            bound_at=datetime.now(UTC),
        ):
            return StudyBinding(account, name, created=True)
    raise RuntimeError(f"no free study folder name for {folder!r} in {account!r}")


async def study_binding(connection: AsyncConnection, study_uid: str) -> StudyBinding | None:
    row = (
        await connection.execute(
            sa.select(study_bindings.c.account, study_bindings.c.study_folder).where(
                study_bindings.c.study_instance_uid == study_uid
            )
        )
    ).first()
    return StudyBinding(row.account, row.study_folder, created=False) if row else None


async def study_bindings_of(
    connection: AsyncConnection, study_uids: list[str]
) -> dict[str, StudyBinding]:
    """The bindings of those of ``study_uids`` that are bound, in one query."""
    rows = await connection.execute(
        sa.select(
            study_bindings.c.study_instance_uid,
            study_bindings.c.account,
            study_bindings.c.study_folder,
        ).where(study_bindings.c.study_instance_uid.in_(sorted(set(study_uids))))
    )
    return {
        row.study_instance_uid: StudyBinding(row.account, row.study_folder, created=False)
        for row in rows
    }


async def rebind_study(
    connection: AsyncConnection,
    study_uid: str,
    current: StudyBinding,
    account: str,
    *,
    respell: bool,
) -> StudyBinding:
    """Bind a filed study to ``account`` instead, under its folder's name (suffixed when that
    account has a folder so named); with ``respell``, as :func:`claim_study`. Raises
    ``LookupError`` when the binding is no longer ``current`` (another re-file won)."""
    if respell:
        account = await account_spelling(connection, account)
    for _ in range(MAX_RACES):
        name = await _free_name(
            connection, study_bindings, "account", account, current.study_folder
        )
        try:
            async with connection.begin_nested():  # a lost race undoes this statement only
                result = await connection.execute(
                    study_bindings.update()
                    .where(
                        study_bindings.c.study_instance_uid == study_uid,
                        study_bindings.c.account == current.account,
                        study_bindings.c.study_folder == current.study_folder,
                    )
                    .values(account=account, study_folder=name, folder_key=folder_key(name))
                )
        except sa.exc.IntegrityError:
            continue  # a router bound another study to that name a moment ago
        if not result.rowcount:
            raise LookupError(f"the binding of study {study_uid} changed meanwhile")
        return StudyBinding(account, name, created=True)
    raise RuntimeError(f"no free study folder name for {current.study_folder!r} in {account!r}")


async def claim_series(
    connection: AsyncConnection, study_uid: str, series_uid: str, folder: str
) -> str:
    """The series' folder within its study (suffixed when another series has the name)."""
    for _ in range(MAX_RACES):
        bound = await connection.scalar(
            sa.select(series_bindings.c.series_folder).where(
                series_bindings.c.series_instance_uid == series_uid
            )
        )
        if bound is not None:
            return str(bound)
        name = await _free_name(
            connection, series_bindings, "study_instance_uid", study_uid, folder
        )
        if await _insert_if_absent(
            connection,
            series_bindings,
            series_instance_uid=series_uid,
            study_instance_uid=study_uid,
            series_folder=name,
            folder_key=folder_key(name),
            bound_at=datetime.now(UTC),
        ):
            return name
    raise RuntimeError(f"no free series folder name for {folder!r}")


async def account_spelling(connection: AsyncConnection, account: str) -> str:
    """The spelling a ``Guest/<name>`` folder already has when it differs only in case (two
    spellings of one physician): one folder on a Windows share must be one folder here."""
    prefix = account.partition("/")[0] + "/"
    known = await connection.scalars(
        sa.select(study_bindings.c.account)
        .where(study_bindings.c.account.startswith(prefix, autoescape=True))
        .distinct()
    )
    wanted = folder_key(account)
    return next((name for name in known if folder_key(name) == wanted), account)


async def existing_placement(connection: AsyncConnection, sop_uid: str) -> Placement | None:
    row = (
        await connection.execute(
            sa.select(placements.c.path, placements.c.spool_name).where(
                placements.c.sop_instance_uid == sop_uid
            )
        )
    ).first()
    return Placement(row.path, row.spool_name, created=False) if row else None


@dataclass(frozen=True)
class Slot:
    """Where an instance wants to go: its series folder path and its numbers."""

    study_uid: str
    series_uid: str
    series_dir: str
    series_number: int | None
    echo: int
    number: int | None


async def claim_placement(
    connection: AsyncConnection, sop_uid: str, slot: Slot, spool_name: str
) -> Placement:
    """The instance's file: its number if free, else the next free count in its series."""
    used = set(
        (
            await connection.scalars(
                sa.select(placements.c.number).where(
                    placements.c.series_instance_uid == slot.series_uid,
                    placements.c.echo_number == slot.echo,
                )
            )
        ).all()
    )
    candidate = slot.number or 1
    while True:
        while candidate in used:
            candidate += 1
        path = f"{slot.series_dir}/{instance_file(slot.series_number, slot.echo, candidate)}"
        if await _insert_if_absent(
            connection,
            placements,
            sop_instance_uid=sop_uid,
            study_instance_uid=slot.study_uid,
            series_instance_uid=slot.series_uid,
            echo_number=slot.echo,
            number=candidate,
            path=path,
            spool_name=spool_name,
            filed_at=datetime.now(UTC),
        ):
            return Placement(path, spool_name, created=True)
        # Either another router took this name, or this very instance was placed meanwhile.
        placed = await existing_placement(connection, sop_uid)
        if placed is not None:
            return placed
        used.add(candidate)


async def move_placement(connection: AsyncConnection, sop_uid: str, spool_name: str) -> None:
    """Record that a re-sent copy (from ``spool_name``) now holds the instance's file."""
    await connection.execute(
        placements.update()
        .where(placements.c.sop_instance_uid == sop_uid)
        .values(spool_name=spool_name, filed_at=datetime.now(UTC))
    )


async def move_placement_path(
    connection: AsyncConnection, study_uid: str, old: str, new: str
) -> None:
    """Record that a file filed at ``old`` now lies at ``new`` (its study was re-filed)."""
    await connection.execute(
        placements.update()
        .where(placements.c.study_instance_uid == study_uid, placements.c.path == old)
        .values(path=new)
    )


async def binding_of_instance(connection: AsyncConnection, sop_uid: str) -> StudyBinding:
    """The binding of the study an already placed instance belongs to."""
    row = (
        await connection.execute(
            sa.select(study_bindings.c.account, study_bindings.c.study_folder)
            .join(
                placements,
                placements.c.study_instance_uid == study_bindings.c.study_instance_uid,
            )
            .where(placements.c.sop_instance_uid == sop_uid)
        )
    ).one()
    return StudyBinding(row.account, row.study_folder, created=False)
