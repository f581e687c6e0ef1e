"""Re-filing: a study moved to the account the filing chain gives now.

A study filed under ``Guest/<physician>`` (or ``Unknown``) because its physician had no account
yet stays there until re-filed, once the account exists. A re-file keeps the study's folder
name (suffixed if the account already has one so named) and everything in it (the ``Dicom``
tree with the file names the claims gave, the scan sheet), and then updates the claims, the
index and the audit trail.

It is safe to kill at any point and to run again, in three steps:

1. one transaction records the move in ``study_moves`` and binds the study to its new account
   and folder, so that instances arriving from then on are filed there;
2. each file is moved (an atomic rename, or a durable copy across filesystems); a file already
   moved is simply not found again;
3. one transaction rewrites the placements and the index rows, writes the audit events and
   removes the ``study_moves`` row.

A re-file found in ``study_moves`` is finished from the step it stopped at. A study is only
re-filed once every instance filed is indexed, so that no indexer is left holding a message
whose file has moved (a later one finds its instance indexed and skips it as stale).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.router import claims
from services.router.accounts import GUEST, UNKNOWN, Account, Directory, list_accounts
from services.router.destination import Home, choose_account, home_of, indexed_path
from services.router.disk import kept_home, place, remove_empty
from services.router.header import Unroutable, read_header
from services.router.naming import folder_key, inside
from services.router.settings import RouterSettings
from shared.db.audit import Action, AuditEvent, record
from shared.db.schema import (
    instances,
    placements,
    series,
    studies,
    study_bindings,
    study_moves,
)
from shared.log import get_logger
from shared.messages import InstanceFiled
from shared.settings import DataPaths

log = get_logger("services.router")
SERVICE = "refile"
SHEET_MARK = "scansheet.json"  # one of the scan sheet's files, in the study folder


class RefileError(Exception):
    """The study cannot be re-filed now; the message says why."""


@dataclass(frozen=True)
class Move:
    study_instance_uid: str
    from_account: str
    from_folder: str
    to_account: str
    to_folder: str


@dataclass(frozen=True)
class Refiled:
    move: Move
    files: int
    sheet: bool  # the study had a scan sheet, which now names the wrong account


class Refiling:
    """Re-files studies of one data directory and index."""

    def __init__(self, settings: RouterSettings, paths: DataPaths, engine: AsyncEngine) -> None:
        self._settings = settings
        self._engine = engine
        self._root = paths.accounts

    async def refile(self, study_uid: str) -> Refiled | None:
        """Move the study to the account the chain gives now; None when it is there already."""
        known = await self._accounts()
        move = await self._pending(study_uid) or await self._plan(study_uid, known)
        if move is None:
            return None
        source = home_of(move.from_account, known, self._root)
        target = home_of(move.to_account, known, self._root)
        keep = kept_home(source, move.from_account in known)
        files = await asyncio.to_thread(self._move_files, move, source, target, keep)
        await self._record(move, target, files)
        sheet = (inside(target.path, Path(move.to_folder)) / SHEET_MARK).exists()
        log.info(
            "study.refiled",
            study_instance_uid=study_uid,
            from_account=move.from_account,
            to_account=move.to_account,
            study_folder=move.to_folder,
            files=files,
        )
        return Refiled(move, files, sheet)

    async def guest_studies(self) -> list[str]:
        """The studies bound to ``Guest/...`` or ``Unknown``, or whose re-file was cut short."""
        async with self._engine.connect() as connection:
            bound = await connection.scalars(
                sa.select(study_bindings.c.study_instance_uid)
                .where(
                    sa.or_(
                        study_bindings.c.account.startswith(f"{GUEST}/", autoescape=True),
                        study_bindings.c.account == UNKNOWN,
                    )
                )
                .order_by(study_bindings.c.bound_at)
            )
            pending = await connection.scalars(sa.select(study_moves.c.study_instance_uid))
            return list(dict.fromkeys([*pending, *bound]))

    async def _accounts(self) -> dict[str, Account]:
        async with self._engine.connect() as connection:
            return {account.name: account for account in await list_accounts(connection)}

    async def _pending(self, study_uid: str) -> Move | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(study_moves).where(study_moves.c.study_instance_uid == study_uid)
                )
            ).first()
        if row is None:
            return None
        log.info("study.refile_resumed", study_instance_uid=study_uid)
        return Move(
            row.study_instance_uid,
            row.from_account,
            row.from_folder,
            row.to_account,
            row.to_folder,
        )

    async def _plan(self, study_uid: str, known: dict[str, Account]) -> Move | None:
        """Step 1: where the chain files the study now; bind it there, recording the move."""
        async with self._engine.connect() as connection:
            binding, sample, filed = await _binding_and_sample(connection, study_uid)
            await self._check_indexed(connection, study_uid, filed)
        try:
            header = await asyncio.to_thread(
                read_header, inside(home_of(binding.account, known, self._root).path, sample)
            )
        except (Unroutable, OSError) as error:
            raise RefileError(f"study {study_uid}: its files cannot be read: {error}") from None
        choice = choose_account(
            Directory(list(known.values())), header.requesting, header.referring
        )
        if folder_key(choice.account) == folder_key(binding.account):
            return None
        async with self._engine.begin() as connection:
            try:
                rebound = await claims.rebind_study(
                    connection,
                    study_uid,
                    binding,
                    choice.account,
                    respell=choice.account not in known,
                )
            except LookupError as error:
                raise RefileError(f"{error}: run the re-file again") from None
            move = Move(
                study_uid,
                binding.account,
                binding.study_folder,
                rebound.account,
                rebound.study_folder,
            )
            await connection.execute(
                study_moves.insert().values(
                    study_instance_uid=study_uid,
                    from_account=move.from_account,
                    from_folder=move.from_folder,
                    to_account=move.to_account,
                    to_folder=move.to_folder,
                    started_at=datetime.now(UTC),
                )
            )
        log.info(
            "study.rebound",
            study_instance_uid=study_uid,
            from_account=move.from_account,
            to_account=move.to_account,
            why=choice.why,
        )
        return move

    async def _check_indexed(self, connection: AsyncConnection, study_uid: str, filed: int) -> None:
        """Refuse while an instance filed is not indexed yet: its message would name a file
        that is about to move."""
        indexed = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(instances.join(series).join(studies))
            .where(studies.c.study_instance_uid == study_uid)
        )
        if (indexed or 0) < filed:
            raise RefileError(
                f"study {study_uid} is still being filed or indexed ({indexed or 0} of "
                f"{filed} instances indexed): re-file it once it is complete"
            )

    def _move_files(self, move: Move, source_home: Home, target_home: Home, keep: Path) -> int:
        """Step 2 (blocking): every file of the old folder into the new one; return how many."""
        source = inside(source_home.path, Path(move.from_folder))
        target = inside(target_home.path, Path(move.to_folder))
        router = self._settings
        if not source.is_dir():
            return 0
        moves = [
            (path, target / path.relative_to(source), target_home)
            for path in sorted(p for p in source.rglob("*") if p.is_file())
        ]
        place(moves, router.directory_mode, router.file_mode)
        remove_empty(source, keep=keep)
        return len(moves)

    async def _record(self, move: Move, target_home: Home, files: int) -> None:
        """Step 3: the placements, the index and the audit trail say where the study is."""
        root = self._root.resolve()
        async with self._engine.begin() as connection:
            placed = (
                await connection.execute(
                    sa.select(placements.c.sop_instance_uid, placements.c.path).where(
                        placements.c.study_instance_uid == move.study_instance_uid
                    )
                )
            ).all()
            new_paths = {uid: _in_new_folder(path, move) for uid, path in placed}
            changed = [(uid, path) for uid, path in new_paths.items() if path != dict(placed)[uid]]
            if changed:
                await connection.execute(
                    placements.update()
                    .where(placements.c.sop_instance_uid == sa.bindparam("uid"))
                    .values(path=sa.bindparam("new_path")),
                    [{"uid": uid, "new_path": path} for uid, path in changed],
                )
            indexed = {
                uid: indexed_path(root, inside(target_home.path, Path(path)))
                for uid, path in new_paths.items()
            }
            if indexed:
                await connection.execute(
                    instances.update()
                    .where(instances.c.sop_instance_uid == sa.bindparam("uid"))
                    .values(path=sa.bindparam("new_path")),
                    [{"uid": uid, "new_path": path} for uid, path in indexed.items()],
                )
            await connection.execute(
                studies.update()
                .where(studies.c.study_instance_uid == move.study_instance_uid)
                .values(
                    account=move.to_account,
                    study_folder=indexed_path(root, inside(target_home.path, Path(move.to_folder))),
                    # The sheet names the account and folder: it is due again.
                    announced_for=None,
                    sheet_written_for=None,
                )
            )
            await record(connection, await self._events(connection, move, files))
            await connection.execute(
                study_moves.delete().where(
                    study_moves.c.study_instance_uid == move.study_instance_uid
                )
            )

    async def _events(
        self, connection: AsyncConnection, move: Move, files: int
    ) -> list[AuditEvent]:
        """One event for the study, and one per instance with its filing as it now stands,
        which the indexer's start-up catch-up reads like the router's own."""
        detail = {
            "from_account": move.from_account,
            "from_folder": move.from_folder,
            "to_account": move.to_account,
            "to_folder": move.to_folder,
            "files": files,
        }
        events = [AuditEvent(Action.REFILED, SERVICE, None, move.study_instance_uid, detail)]
        rows = await connection.execute(
            sa.select(instances, series.c.series_instance_uid)
            .join(series, series.c.id == instances.c.series_fk)
            .join(studies, studies.c.id == series.c.study_fk)
            .where(studies.c.study_instance_uid == move.study_instance_uid)
        )
        for row in rows:
            message = InstanceFiled(
                sop_instance_uid=row.sop_instance_uid,
                sop_class_uid=row.sop_class_uid,
                study_instance_uid=move.study_instance_uid,
                series_instance_uid=row.series_instance_uid,
                transfer_syntax_uid=row.transfer_syntax_uid,
                account=move.to_account,
                path=row.path,
                size=row.size,
                received_at=row.received_at,
                calling_ae=row.calling_ae or "",
            )
            events.append(
                AuditEvent(
                    Action.REFILED,
                    SERVICE,
                    row.sop_instance_uid,
                    move.study_instance_uid,
                    {"message": message.model_dump(mode="json")},
                )
            )
        return events


async def _binding_and_sample(
    connection: AsyncConnection, study_uid: str
) -> tuple[claims.StudyBinding, Path, int]:
    """The study's binding, one of its files (relative to its account's home), and how many
    instances are filed."""
    binding = await claims.study_binding(connection, study_uid)
    if binding is None:
        raise RefileError(f"no study {study_uid} has been filed")
    paths = list(
        await connection.scalars(
            sa.select(placements.c.path).where(placements.c.study_instance_uid == study_uid)
        )
    )
    if not paths:
        raise RefileError(f"no study {study_uid} has been filed")
    return binding, Path(sorted(paths)[0]), len(paths)


def _in_new_folder(path: str, move: Move) -> str:
    """A placement's path (relative to the account's home) in the study's new folder."""
    prefix = move.from_folder + "/"
    return move.to_folder + "/" + path[len(prefix) :] if path.startswith(prefix) else path
