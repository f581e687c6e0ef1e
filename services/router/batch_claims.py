"""The instances' file names for a batch of deliveries, claimed with a few statements.

:func:`claims.claim_placement` costs two statements an instance (the series' numbers, then
the insert). For a batch, the placements already held are read in one query, the wanted
numbers of each series checked in one query, and the new rows inserted in one statement.
Whatever that cannot settle (a number taken, a row another router inserted meanwhile, the
same instance twice in the batch) is claimed one by one by :mod:`claims`, in the same
transaction. The rule is the one-by-one rule: an instance gets its own number when its series
does not hold it yet, else the next free count; a re-sent instance gets the file it holds.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.router import claims
from services.router.naming import instance_file
from shared.db.schema import placements

Wanted = tuple[str, claims.Slot, str]  # SOP Instance UID, where it wants to go, spool name


async def claim_placements(
    connection: AsyncConnection, wanted: list[Wanted]
) -> list[claims.Placement]:
    """One placement per wanted instance, in order: the one it holds, or a new one."""
    uids = [sop_uid for sop_uid, _, _ in wanted]
    if len(set(uids)) != len(uids):  # a re-send within the batch: each sees the one before
        return [await _claim_one(connection, *item) for item in wanted]
    held = await _held(connection, uids)
    taken = await _taken_numbers(connection, [slot for uid, slot, _ in wanted if uid not in held])
    rows: list[dict[str, object]] = []
    chosen: dict[str, str] = {}
    for sop_uid, slot, spool_name in wanted:
        number = slot.number or 1
        group = taken[(slot.series_uid, slot.echo)]
        if sop_uid in held or number in group:
            continue
        group.add(number)
        path = f"{slot.series_dir}/{instance_file(slot.series_number, slot.echo, number)}"
        chosen[sop_uid] = path
        rows.append(_row(sop_uid, slot, spool_name, number, path))
    inserted = await _insert(connection, rows)
    result = []
    for sop_uid, slot, spool_name in wanted:
        if sop_uid in held:
            result.append(held[sop_uid])
        elif sop_uid in inserted:
            result.append(claims.Placement(chosen[sop_uid], spool_name, created=True))
        else:
            result.append(await _claim_one(connection, sop_uid, slot, spool_name))
    return result


async def _claim_one(
    connection: AsyncConnection, sop_uid: str, slot: claims.Slot, spool_name: str
) -> claims.Placement:
    placed = await claims.existing_placement(connection, sop_uid)
    if placed is not None:
        return placed
    return await claims.claim_placement(connection, sop_uid, slot, spool_name)


async def _held(connection: AsyncConnection, uids: list[str]) -> dict[str, claims.Placement]:
    rows = await connection.execute(
        sa.select(placements.c.sop_instance_uid, placements.c.path, placements.c.spool_name).where(
            placements.c.sop_instance_uid.in_(uids)
        )
    )
    return {
        row.sop_instance_uid: claims.Placement(row.path, row.spool_name, created=False)
        for row in rows
    }


async def _taken_numbers(
    connection: AsyncConnection, slots: list[claims.Slot]
) -> defaultdict[tuple[str, int], set[int]]:
    """Of the numbers the slots want, those their series already hold (per series and echo)."""
    wanted: defaultdict[tuple[str, int], set[int]] = defaultdict(set)
    for slot in slots:
        wanted[(slot.series_uid, slot.echo)].add(slot.number or 1)
    taken: defaultdict[tuple[str, int], set[int]] = defaultdict(set)
    for (series_uid, echo), numbers in sorted(wanted.items()):
        held = await connection.scalars(
            sa.select(placements.c.number).where(
                placements.c.series_instance_uid == series_uid,
                placements.c.echo_number == echo,
                placements.c.number.in_(sorted(numbers)),
            )
        )
        taken[(series_uid, echo)].update(held)
    return taken


def _row(
    sop_uid: str, slot: claims.Slot, spool_name: str, number: int, path: str
) -> dict[str, object]:
    return {
        "sop_instance_uid": sop_uid,
        "study_instance_uid": slot.study_uid,
        "series_instance_uid": slot.series_uid,
        "echo_number": slot.echo,
        "number": number,
        "path": path,
        "spool_name": spool_name,
        "filed_at": datetime.now(UTC),
    }


async def _insert(connection: AsyncConnection, rows: list[dict[str, object]]) -> set[str]:
    """Insert ``rows`` (in key order, so that routers' locks never cross) unless a row holds
    the instance or the path already; the instances inserted."""
    if not rows:
        return set()
    rows.sort(key=lambda row: (row["series_instance_uid"], row["path"]))
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # One statement, many parameter sets: compiled once and cached, whatever the batch size.
    statement = (
        dialect.insert(placements).on_conflict_do_nothing().returning(placements.c.sop_instance_uid)
    )
    return set(await connection.scalars(statement, rows))
