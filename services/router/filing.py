"""One ``instance.received`` delivery, from the spool to its account, exactly once.

Order matters for crash safety: the claims (study binding, series folder, file name) and the
audit rows are committed first; then the file moves; then ``instance.filed`` is published with
a confirm; only then is the delivery acked. A redelivery after a crash at any step finds its
own claim (same spool name) and finishes the remaining steps; a re-send of the same SOP
Instance UID (another spool name) replaces the filed copy or, with ``keep-first``, is dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.router import claims
from services.router.accounts import Account, Directory, list_accounts
from services.router.destination import Home, choose_account, home_of, indexed_path
from services.router.disk import kept_home, place, remove_empty
from services.router.header import Header, Unroutable, read_header
from services.router.naming import inside, series_folder, study_folder
from services.router.settings import RouterSettings
from shared.bus import Bus, Delivery, PublishError, Retry
from shared.db.audit import Action, AuditEvent, record
from shared.log import get_logger
from shared.messages import InstanceFiled, InstanceReceived
from shared.quarantine import quarantine
from shared.settings import DataPaths

log = get_logger("services.router")
SERVICE = "router"


class AccountsCache:
    """The accounts, re-read from the database at most every ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._loaded_at = float("-inf")
        self._accounts: list[Account] = []

    async def get(self, connection: AsyncConnection) -> tuple[Directory, dict[str, Account]]:
        now = asyncio.get_running_loop().time()
        if now - self._loaded_at > self._ttl:
            self._accounts = await list_accounts(connection)
            self._loaded_at = now
        return Directory(self._accounts), {a.name: a for a in self._accounts}


@dataclass(frozen=True)
class Decision:
    """What the claims decided for one delivery."""

    account: str
    home: Home
    relative: Path  # the file, relative to the account's home
    action: Action | None  # FILED, REPLACED, DUPLICATE; None for a redelivery


class Filing:
    def __init__(
        self, settings: RouterSettings, paths: DataPaths, engine: AsyncEngine, bus: Bus
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._bus = bus
        self._paths = paths
        self._accounts = AccountsCache(settings.account_cache_seconds)

    async def handle(self, delivery: Delivery[InstanceReceived]) -> None:
        message = delivery.message
        spooled = self._paths.spool / message.spool_name
        if not spooled.exists():
            await self._after_the_move(message)
            return
        try:
            header = await asyncio.to_thread(read_header, spooled)
        except Unroutable as error:
            await self._quarantine(spooled, message, str(error))
            return
        decision = await self._claim(message, header)
        if decision.action is Action.DUPLICATE:
            await asyncio.to_thread(spooled.unlink, missing_ok=True)
            log.info("instance.duplicate_dropped", sop_instance_uid=header.sop_instance_uid)
            return
        target = inside(decision.home.path, decision.relative)
        router = self._settings
        try:
            await asyncio.to_thread(
                place, spooled, target, decision.home, router.directory_mode, router.file_mode
            )
        except OSError as error:
            raise Retry(f"cannot write {target}: {error.strerror or error}") from error
        decision, target = await self._follow_refile(header.study_uid, decision, target)
        await self._publish(message, header, decision, target)
        log.info(
            "instance.filed" if decision.action is not Action.REPLACED else "instance.replaced",
            sop_instance_uid=header.sop_instance_uid,
            study_instance_uid=header.study_uid,
            account=decision.account,
            path=str(target),
        )

    async def _follow_refile(
        self, study_uid: str, decision: Decision, target: Path
    ) -> tuple[Decision, Path]:
        """Where the file belongs now: a re-file may have bound its study elsewhere between
        the claim and the move, and then the file follows it (see :mod:`refile`)."""
        async with self._engine.connect() as connection:
            bound = await claims.study_binding(connection, study_uid)
        folder, _, rest = str(decision.relative).partition("/")
        if bound is None or (bound.account, bound.study_folder) == (decision.account, folder):
            return decision, target
        _, known = await self._accounts_now()
        home = home_of(bound.account, known, self._paths.accounts)
        relative = Path(bound.study_folder) / rest
        moved = inside(home.path, relative)
        router = self._settings
        await asyncio.to_thread(place, target, moved, home, router.directory_mode, router.file_mode)
        keep = kept_home(decision.home, decision.account in known)
        await asyncio.to_thread(remove_empty, target.parent, keep=keep)
        async with self._engine.begin() as connection:
            await claims.move_placement_path(
                connection, study_uid, str(decision.relative), str(relative)
            )
        log.info("instance.followed_refile", study_instance_uid=study_uid, account=bound.account)
        return Decision(bound.account, home, relative, decision.action), moved

    async def _claim(self, message: InstanceReceived, header: Header) -> Decision:
        async with self._engine.begin() as connection:
            directory, known = await self._accounts.get(connection)
            choice = choose_account(directory, header.requesting, header.referring)
            wanted = study_folder(self._settings.study_folder_template, header.study)
            binding = await claims.claim_study(
                connection,
                header.study_uid,
                choice.account,
                wanted,
                respell=choice.account not in known,  # Guest/<name>: a folder, not an account
            )
            if binding.created:
                log.info(
                    "study.bound",
                    study_instance_uid=header.study_uid,
                    account=binding.account,
                    study_folder=binding.study_folder,
                    why=choice.why,
                )
            series_name = await claims.claim_series(
                connection,
                header.study_uid,
                header.series_uid,
                series_folder(
                    header.series_number,
                    header.series_description,
                    header.protocol,
                    header.modality,
                ),
            )
            series_dir = f"{binding.study_folder}/Dicom/{series_name}"
            placed = await claims.existing_placement(connection, header.sop_instance_uid)
            if placed is None:
                slot = claims.Slot(
                    header.study_uid,
                    header.series_uid,
                    series_dir,
                    header.series_number,
                    header.echo,
                    header.instance_number,
                )
                placed = await claims.claim_placement(
                    connection, header.sop_instance_uid, slot, message.spool_name
                )
            action = self._action(placed, message)
            if action is Action.REPLACED:
                await claims.move_placement(connection, header.sop_instance_uid, message.spool_name)
            home = home_of(binding.account, known, self._paths.accounts)
            decision = Decision(binding.account, home, Path(placed.path), action)
            if action is not None:
                await record(connection, self._audit(message, header, decision))
        return decision

    def _action(self, placed: claims.Placement, message: InstanceReceived) -> Action | None:
        if placed.created:
            return Action.FILED
        if placed.spool_name == message.spool_name:
            return None  # this very receipt, redelivered after a crash: finish the job
        if self._settings.on_duplicate == "keep-first":
            return Action.DUPLICATE
        return Action.REPLACED

    def _audit(
        self, message: InstanceReceived, header: Header, decision: Decision
    ) -> list[AuditEvent]:
        received = AuditEvent(
            Action.RECEIVED,
            "receiver",
            header.sop_instance_uid,
            header.study_uid,
            {
                "calling_ae": message.calling_ae,
                "peer_address": message.peer_address,
                "size": message.size,
                "spool_name": message.spool_name,
                "transfer_syntax_uid": message.transfer_syntax_uid,
            },
            at=message.received_at,
        )
        detail: dict[str, object] = {"account": decision.account, "path": str(decision.relative)}
        if decision.action is not Action.DUPLICATE:
            filed = self._filed_message(message, header, decision, self._target(decision))
            detail["message"] = filed.model_dump(mode="json")
        assert decision.action is not None
        return [
            received,
            AuditEvent(decision.action, SERVICE, header.sop_instance_uid, header.study_uid, detail),
        ]

    def _target(self, decision: Decision) -> Path:
        return inside(decision.home.path, decision.relative)

    def _filed_message(
        self, message: InstanceReceived, header: Header, decision: Decision, target: Path
    ) -> InstanceFiled:
        path = indexed_path(self._paths.accounts.resolve(), target)
        return InstanceFiled(
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid or message.sop_class_uid,
            study_instance_uid=header.study_uid,
            series_instance_uid=header.series_uid,
            transfer_syntax_uid=header.transfer_syntax_uid or message.transfer_syntax_uid,
            account=decision.account,
            path=path,
            size=target.stat().st_size if target.exists() else message.size,
            replaced=decision.action is Action.REPLACED,
            received_at=message.received_at,
            calling_ae=message.calling_ae,
        )

    async def _publish(
        self, message: InstanceReceived, header: Header, decision: Decision, target: Path
    ) -> None:
        try:
            await self._bus.publish(self._filed_message(message, header, decision, target))
        except PublishError as error:
            raise Retry(f"instance.filed not confirmed: {error}") from error

    async def _after_the_move(self, message: InstanceReceived) -> None:
        """The spool file is gone: either this receipt was filed (finish by publishing) or
        the receiver discarded it after a failed publish (the sender was told to retry)."""
        async with self._engine.connect() as connection:
            placed = await claims.existing_placement(connection, message.sop_instance_uid)
            if placed is None or placed.spool_name != message.spool_name:
                log.warning(
                    "instance.spool_file_missing",
                    sop_instance_uid=message.sop_instance_uid,
                    spool_name=message.spool_name,
                )
                return
            filed = await claims.binding_of_instance(connection, message.sop_instance_uid)
        _, known = await self._accounts_now()
        home = home_of(filed.account, known, self._paths.accounts)
        target = inside(home.path, Path(placed.path))
        if not target.exists():
            raise Retry(f"spool file gone but {target} missing: the file system is not settled")
        header = await asyncio.to_thread(read_header, target)
        decision = Decision(filed.account, home, Path(placed.path), None)
        await self._publish(message, header, decision, target)
        log.info("instance.filed_republished", sop_instance_uid=message.sop_instance_uid)

    async def _accounts_now(self) -> tuple[Directory, dict[str, Account]]:
        async with self._engine.connect() as connection:
            return await self._accounts.get(connection)

    async def _quarantine(self, spooled: Path, message: InstanceReceived, reason: str) -> None:
        target = await asyncio.to_thread(
            quarantine,
            spooled,
            self._paths.quarantine,
            reason,
            sop_instance_uid=message.sop_instance_uid,
            calling_ae=message.calling_ae,
            spool_name=message.spool_name,
        )
        async with self._engine.begin() as connection:
            await record(
                connection,
                [
                    AuditEvent(
                        Action.QUARANTINED,
                        SERVICE,
                        message.sop_instance_uid,
                        None,
                        {"reason": reason, "path": str(target)},
                    )
                ],
            )
