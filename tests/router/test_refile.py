"""Re-filing: a Guest study moves to its physician's account once there is one, with its
names, claims, index rows and scan sheet, and a re-file cut short is finished by the next."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom.uid import generate_uid

from services.router.refile import Move, Refiling
from shared.db.audit import Action, AuditEvent, history
from shared.db.schema import instances, placements, studies, study_bindings
from tests.conftest import Backend
from tests.router.conftest import StartServer, add_accounts, make_instance, relative
from tests.scansheet.conftest import FAST, make_study, send_all, wait_for_sheet
from tests.support.cli import store_server
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest

PHYSICIAN = "Doe^John"  # requesting physician of the Guest studies


def flags(server: ServerUnderTest, backend: Backend) -> list[str]:
    """How a command reaches the running server's data directory and index."""
    found = ["--data-dir", str(server.settings.data_dir)]
    return [*found, "--database", backend.database_url] if backend.database_url else found


def guest_study(server: ServerUnderTest, tmp_path: Path, series: int = 2) -> str:
    """A study of a physician without an account, filed, indexed and with its sheet."""
    study_uid = str(generate_uid())
    paths = make_study(
        tmp_path / "in", study_uid, series=series, per_series=2, RequestingPhysician=PHYSICIAN
    )
    send_all(server, paths)
    sheet = wait_for_sheet(server, instances=str(2 * series))
    assert sheet["study_folder"].startswith("Guest/Doe_John/")
    return study_uid


def test_a_guest_study_moves_to_its_new_account_with_everything(
    start_server: StartServer, backend: Backend, tmp_path: Path
) -> None:
    server = start_server(backend, scansheet=FAST)
    study_uid = guest_study(server, tmp_path)
    before = sorted(relative(server, files(server)))
    add_accounts(server, {"doe": ["Doe^John"]})

    refiled = store_server("refile", "--all-guests", *flags(server, backend))

    assert refiled.returncode == 0, refiled.stderr
    assert "1 study re-filed, 0 not" in refiled.stdout
    after = sorted(relative(server, files(server)))
    assert after == sorted(path.replace("Guest/Doe_John/", "doe/") for path in before)
    assert not (server.settings.accounts_dir / "Guest" / "Doe_John").exists()
    view = server.call(index_view(server, study_uid))
    assert view.account == "doe" and view.folder.startswith("doe/")
    assert all((server.settings.accounts_dir / path).is_file() for path in view.paths)
    assert view.binding[0] == "doe"
    assert all(not path.startswith("Guest") for path in view.placed)
    sheet = json.loads(next(server.settings.accounts_dir.rglob("scansheet.json")).read_text())
    assert sheet["study"]["account"] == "doe"
    trail = server.call(events(server, study_uid))
    assert sum(event.sop_instance_uid is None for event in trail) == 1
    assert sum(event.sop_instance_uid is not None for event in trail) == 4

    # Later instances follow the study to its account, numbered on from the rest.
    late = make_instance(
        tmp_path / "late",
        study_uid=study_uid,
        series_uid=str(generate_uid()),
        SeriesNumber=7,
        SeriesDescription="late",
        RequestingPhysician=PHYSICIAN,
    )
    send_all(server, [late])
    wait_until(lambda: len(files(server)) == 5 and not server.spool, message="late instance")
    assert all(path.startswith("doe/") for path in relative(server, files(server)))

    again = store_server("refile", study_uid, *flags(server, backend))
    assert again.returncode == 0
    assert "already in the account its physician has" in again.stdout


class Interrupted(Exception):
    """The process died here."""


class DiesMovingFiles(Refiling):
    def _move_files(self, move: Move, *args: object) -> int:
        source = self._root / move.from_account / move.from_folder
        first = next(p for p in sorted(source.rglob("*.dcm")))
        target = self._root / move.to_account / move.to_folder
        destination = target / first.relative_to(source)
        destination.parent.mkdir(parents=True)
        first.rename(destination)  # one file made it, the rest did not
        raise Interrupted


class DiesRecording(Refiling):
    async def _record(self, *args: object) -> None:
        raise Interrupted


@pytest.mark.parametrize("dying", [DiesMovingFiles, DiesRecording], ids=["moving", "recording"])
def test_a_refile_killed_on_its_way_is_finished_by_the_next(
    start_server: StartServer, tmp_path: Path, dying: type[Refiling]
) -> None:
    server = start_server(scansheet=FAST)
    study_uid = guest_study(server, tmp_path)
    add_accounts(server, {"doe": ["Doe^John"]})
    assert server.running is not None
    with pytest.raises(Interrupted):
        server.call(
            dying(server.settings.router, server.settings.paths, server.running.index).refile(
                study_uid
            )
        )

    finished = server.call(refiling(server).refile(study_uid))

    assert finished is not None and finished.move.to_account == "doe"
    assert all(path.startswith("doe/") for path in relative(server, files(server)))
    assert len(files(server)) == 4
    view = server.call(index_view(server, study_uid))
    assert view.account == "doe"
    assert all((server.settings.accounts_dir / path).is_file() for path in view.paths)
    assert server.call(refiling(server).refile(study_uid)) is None


def test_a_folder_name_the_account_has_already_is_suffixed(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(scansheet=FAST)
    add_accounts(server, {"smith": ["Smith^Ann"]})
    # The same patient, date and accession: one folder name, first in smith's account.
    send_all(
        server,
        [
            make_instance(
                tmp_path / "a", study_uid=str(generate_uid()), RequestingPhysician="Smith^Ann"
            )
        ],
    )
    study_uid = guest_study(server, tmp_path, series=1)
    assert server.running is not None

    async def alias() -> None:
        from services.router.accounts import add_alias

        assert server.running is not None
        async with server.running.index.begin() as connection:
            await add_alias(connection, "smith", "Doe^John")

    server.call(alias())
    refiled = server.call(refiling(server).refile(study_uid))
    assert refiled is not None
    folders = {path.split("/")[1] for path in relative(server, files(server))}
    assert refiled.move.to_folder == refiled.move.from_folder + "_2"
    assert refiled.move.to_folder in folders and refiled.move.from_folder in folders


def test_refusals_name_the_reason(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    unknown = store_server("refile", "1.2.3.4", "--data-dir", str(server.settings.data_dir))
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "store-server refile: no study 1.2.3.4 has been filed"
    usage = store_server("refile", "--data-dir", str(server.settings.data_dir))
    assert usage.returncode == 2


def refiling(server: ServerUnderTest) -> Refiling:
    assert server.running is not None
    return Refiling(server.settings.router, server.settings.paths, server.running.index)


def files(server: ServerUnderTest) -> list[Path]:
    return sorted(server.settings.accounts_dir.rglob("*.dcm"))


@dataclass(frozen=True)
class IndexView:
    """What the index and the claims say of a study."""

    account: str
    folder: str
    paths: list[str]  # the instances', relative to the accounts root
    placed: list[str]  # the placements', relative to the account's home
    binding: tuple[str, str]


async def index_view(server: ServerUnderTest, study_uid: str) -> IndexView:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        study = (
            await connection.execute(
                sa.select(studies.c.id, studies.c.account, studies.c.study_folder).where(
                    studies.c.study_instance_uid == study_uid
                )
            )
        ).one()
        paths = await connection.scalars(
            sa.select(instances.c.path).where(
                instances.c.sop_instance_uid.in_(
                    sa.select(placements.c.sop_instance_uid).where(
                        placements.c.study_instance_uid == study_uid
                    )
                )
            )
        )
        placed = await connection.scalars(
            sa.select(placements.c.path).where(placements.c.study_instance_uid == study_uid)
        )
        binding = (
            await connection.execute(
                sa.select(study_bindings.c.account, study_bindings.c.study_folder).where(
                    study_bindings.c.study_instance_uid == study_uid
                )
            )
        ).one()
        return IndexView(
            study.account, study.study_folder, list(paths), list(placed), tuple(binding)
        )


async def events(server: ServerUnderTest, study_uid: str) -> list[AuditEvent]:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        return await history(connection, study_instance_uid=study_uid, action=Action.REFILED)


class Hasty(Refiling):
    """Looks before the router's claim is visible to it (committed a moment later)."""

    async def _check_indexed(self, *args: object) -> None:
        return None


def test_an_instance_claimed_just_before_a_refile_follows_its_study(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A router claimed under the old binding, then the re-file bound the study elsewhere
    and moved its files, then the router moved its file: the file follows the study."""
    server = start_server(scansheet=FAST)
    study_uid = guest_study(server, tmp_path, series=1)
    add_accounts(server, {"doe": [PHYSICIAN]})
    assert server.running is not None
    router = server.running.services["router"]
    filing = router._filing  # type: ignore[attr-defined]
    claim = filing._claim
    refiling = Hasty(server.settings.router, server.settings.paths, server.running.index)

    async def claim_then_refile(*args: object) -> object:
        decision = await claim(*args)
        assert await refiling.refile(study_uid) is not None
        return decision

    filing._claim = claim_then_refile
    late = make_instance(
        tmp_path / "late", study_uid=study_uid, InstanceNumber=9, RequestingPhysician=PHYSICIAN
    )
    send_all(server, [late])
    guest = server.settings.accounts_dir / "Guest" / "Doe_John"
    wait_until(
        lambda: (
            [p.split("/")[0] for p in relative(server, files(server))] == ["doe"] * 3
            and not guest.exists()
        ),
        message="the late instance in the study's new account, and nothing left behind",
    )
    view = server.call(index_view(server, study_uid))
    assert all(not path.startswith("Guest") for path in view.placed)
    wait_until(
        lambda: len(server.call(index_view(server, study_uid)).paths) == 3, message="indexed"
    )
    view = server.call(index_view(server, study_uid))
    assert all((server.settings.accounts_dir / path).is_file() for path in view.paths)
