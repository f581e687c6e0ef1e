"""One ``instance.received`` delivery, from the spool to its account, exactly once.

Order matters for crash safety: the claims (study binding, series folder, file name) and the
audit rows are committed first; then the file moves; then ``instance.filed`` is published with
a confirm; only then is the delivery acked. A redelivery after a crash at any step finds its
own claim (same spool name) and finishes the remaining steps; a re-send of the same SOP
Instance UID (another spool name) replaces the filed copy or, with ``keep-first``, is dropped.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.router import batch_claims, claims
from services.router.accounts import Account, AccountsCache, Directory
from services.router.destination import Home, choose_account, home_of, indexed_path
from services.router.disk import kept_home, place, remove_empty
from services.router.header import Header, Unroutable, header_from_message, read_header
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


@dataclass(frozen=True)
class Arrival:
    """A spooled instance to file, and its filing facts."""

    message: InstanceReceived
    header: Header
    spooled: Path


@dataclass(frozen=True)
class Decision:
    """What the claims decided for one delivery."""

    account: str
    home: Home
    relative: Path  # the file, relative to the account's home
    action: Action | None  # FILED, REPLACED, DUPLICATE; None for a redelivery
    target: Path  # the file, inside the account's home


class Filing:
    def __init__(
        self, settings: RouterSettings, paths: DataPaths, engine: AsyncEngine, bus: Bus
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._bus = bus
        self._paths = paths
        self._accounts = AccountsCache(settings.account_cache_seconds)

    @functools.cached_property
    def _accounts_root(self) -> Path:
        """The accounts root as the index's paths are relative to (resolved once, when the
        first file is filed: the router has made the folder by then)."""
        return self._paths.accounts.resolve()

    async def handle(self, deliveries: list[Delivery[InstanceReceived]]) -> None:
        """File a batch of deliveries: their claims in one transaction, their files moved
        with one sync per folder, their ``instance.filed`` confirmed together."""
        messages = [delivery.message for delivery in deliveries]
        reads = await asyncio.to_thread(self._read_headers, messages)
        arrivals: list[Arrival] = []
        for message, read in zip(messages, reads, strict=True):
            spooled = self._paths.spool / message.spool_name
            if read is None:
                await self._after_the_move(message)
            elif isinstance(read, Unroutable):
                await self._quarantine(spooled, message, str(read))
            else:
                arrivals.append(Arrival(message, read, spooled))
        if not arrivals:
            return
        decisions = await self._claim(arrivals)
        kept: list[tuple[Arrival, Decision]] = []
        for arrival, decision in zip(arrivals, decisions, strict=True):
            if decision.action is not Action.DUPLICATE:
                kept.append((arrival, decision))
                continue
            await asyncio.to_thread(arrival.spooled.unlink, missing_ok=True)
            log.info("instance.duplicate_dropped", sop_instance_uid=arrival.header.sop_instance_uid)
        moves = [(a.spooled, d.target, d.home) for a, d in kept]
        router = self._settings
        try:
            await asyncio.to_thread(place, moves, router.directory_mode, router.file_mode)
        except OSError as error:
            raise Retry(f"cannot write {error.filename}: {error.strerror or error}") from error
        filed = await self._follow_refiles(kept)
        await self._publish_all(filed)
        for arrival, decision in filed:
            log.info(
                "instance.filed" if decision.action is not Action.REPLACED else "instance.replaced",
                sop_instance_uid=arrival.header.sop_instance_uid,
                study_instance_uid=arrival.header.study_uid,
                account=decision.account,
                path=str(decision.target),
            )

    def _read_headers(self, messages: list[InstanceReceived]) -> list[Header | Unroutable | None]:
        """Each spooled file's filing facts (blocking); None for a file no longer spooled."""
        reads: list[Header | Unroutable | None] = []
        for message in messages:
            spooled = self._paths.spool / message.spool_name
            try:
                if not spooled.exists():
                    reads.append(None)
                elif message.filing_header is not None:  # as the receiver read the bytes
                    reads.append(header_from_message(message, message.filing_header))
                else:
                    reads.append(read_header(spooled))
            except Unroutable as error:
                reads.append(None if not spooled.exists() else error)
        return reads

    async def _follow_refiles(
        self, kept: list[tuple[Arrival, Decision]]
    ) -> list[tuple[Arrival, Decision]]:
        """Where the files are now: a re-file may have bound a study elsewhere between the
        claim and the move, and then its files follow it (see :mod:`refile`)."""
        async with self._engine.connect() as connection:
            bound = await claims.study_bindings_of(
                connection, [a.header.study_uid for a, _ in kept]
            )
        followed = []
        for arrival, decision in kept:
            now = bound.get(arrival.header.study_uid)
            folder = str(decision.relative).partition("/")[0]
            if now is not None and (now.account, now.study_folder) != (decision.account, folder):
                decision = await self._follow(arrival.header.study_uid, decision, now)
            followed.append((arrival, decision))
        return followed

    async def _follow(
        self, study_uid: str, decision: Decision, bound: claims.StudyBinding
    ) -> Decision:
        target = decision.target
        _, known = await self._accounts_now()
        home = home_of(bound.account, known, self._paths.accounts)
        relative = Path(bound.study_folder) / str(decision.relative).partition("/")[2]
        moved = inside(home.path, relative)
        router = self._settings
        await asyncio.to_thread(
            place, [(target, moved, home)], router.directory_mode, router.file_mode
        )
        keep = kept_home(decision.home, decision.account in known)
        await asyncio.to_thread(remove_empty, target.parent, keep=keep)
        async with self._engine.begin() as connection:
            await claims.move_placement_path(
                connection, study_uid, str(decision.relative), str(relative)
            )
        log.info("instance.followed_refile", study_instance_uid=study_uid, account=bound.account)
        return Decision(bound.account, home, relative, decision.action, moved)

    async def _claim(self, arrivals: list[Arrival]) -> list[Decision]:
        """Every claim of the batch in one transaction, in the order that keeps concurrent
        routers from waiting on each other in a cycle: studies, then series, by UID; then
        the instances' file names (:mod:`batch_claims`)."""
        async with self._engine.begin() as connection:
            directory, known = await self._accounts.get(connection)
            studies: dict[str, claims.StudyBinding] = {}
            for arrival in sorted(arrivals, key=lambda a: a.header.study_uid):
                header = arrival.header
                if header.study_uid not in studies:
                    studies[header.study_uid] = await self._claim_study(
                        connection, header, directory, known
                    )
            series: dict[str, str] = {}
            for arrival in sorted(arrivals, key=lambda a: a.header.series_uid):
                header = arrival.header
                if header.series_uid not in series:
                    series[header.series_uid] = await claims.claim_series(
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
            wanted = [
                (
                    a.header.sop_instance_uid,
                    self._slot(a.header, studies, series),
                    a.message.spool_name,
                )
                for a in arrivals
            ]
            placed = await batch_claims.claim_placements(connection, wanted)
            decisions: list[Decision] = []
            events: list[AuditEvent] = []
            for arrival, placement in zip(arrivals, placed, strict=True):
                header, message = arrival.header, arrival.message
                action = self._action(placement, message)
                if action is Action.REPLACED:
                    await claims.move_placement(
                        connection, header.sop_instance_uid, message.spool_name
                    )
                binding = studies[header.study_uid]
                home = home_of(binding.account, known, self._paths.accounts)
                relative = Path(placement.path)
                target = inside(home.path, relative)
                decision = Decision(binding.account, home, relative, action, target)
                decisions.append(decision)
                if action is not None:
                    events.extend(self._audit(message, header, decision))
            await record(connection, events)
        return decisions

    async def _claim_study(
        self,
        connection: AsyncConnection,
        header: Header,
        directory: Directory,
        known: dict[str, Account],
    ) -> claims.StudyBinding:
        choice = choose_account(directory, header.requesting, header.referring)
        binding = await claims.claim_study(
            connection,
            header.study_uid,
            choice.account,
            study_folder(self._settings.study_folder_template, header.study),
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
        return binding

    @staticmethod
    def _slot(
        header: Header, studies: dict[str, claims.StudyBinding], series: dict[str, str]
    ) -> claims.Slot:
        series_dir = f"{studies[header.study_uid].study_folder}/Dicom/{series[header.series_uid]}"
        return claims.Slot(
            header.study_uid,
            header.series_uid,
            series_dir,
            header.series_number,
            header.echo,
            header.instance_number,
        )

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
            filed = self._filed_message(message, header, decision)
            detail["message"] = filed.model_dump(mode="json")
        assert decision.action is not None
        return [
            received,
            AuditEvent(decision.action, SERVICE, header.sop_instance_uid, header.study_uid, detail),
        ]

    def _filed_message(
        self, message: InstanceReceived, header: Header, decision: Decision
    ) -> InstanceFiled:
        path = indexed_path(self._accounts_root, decision.target)
        return InstanceFiled(
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid or message.sop_class_uid,
            study_instance_uid=header.study_uid,
            series_instance_uid=header.series_uid,
            transfer_syntax_uid=header.transfer_syntax_uid or message.transfer_syntax_uid,
            account=decision.account,
            path=path,
            size=message.size,  # the spooled file's, which is the filed file
            replaced=decision.action is Action.REPLACED,
            received_at=message.received_at,
            calling_ae=message.calling_ae,
        )

    async def _publish(self, message: InstanceReceived, header: Header, decision: Decision) -> None:
        try:
            await self._bus.publish(self._filed_message(message, header, decision))
        except PublishError as error:
            raise Retry(f"instance.filed not confirmed: {error}") from error

    async def _publish_all(self, filed: list[tuple[Arrival, Decision]]) -> None:
        """Publish every ``instance.filed`` at once, their confirms awaited together."""
        outcomes = await asyncio.gather(
            *(self._publish(a.message, a.header, d) for a, d in filed),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

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
        decision = Decision(filed.account, home, Path(placed.path), None, target)
        await self._publish(message, header, decision)
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
