"""Accounts as an administrator manages them, and what filing does with them: homes, modes,
owners, bindings that later instances follow, the audit trail, and failures that are retried
and then dead-lettered without losing the file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

from shared.db.audit import Action, AuditEvent, history
from shared.dicom.net import send
from tests.conftest import Backend
from tests.router.conftest import (
    StartServer,
    add_accounts,
    make_instance,
    relative,
    sop_uid_of,
    wait_for_filed,
)
from tests.support import cli
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest


def store_server(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """A command on the data directory ``data_dir``."""
    return cli.store_server(*arguments, "--data-dir", str(data_dir))


def test_accounts_commands(tmp_path: Path) -> None:
    added = store_server(tmp_path, "accounts", "add", "smith", "--physician", "Smith^John")
    assert added.returncode == 0, added.stderr
    assert store_server(tmp_path, "accounts", "alias", "smith", "Smith^J").returncode == 0
    listed = json.loads(store_server(tmp_path, "accounts", "list", "--json").stdout)
    assert listed == [
        {
            "name": "smith",
            "home": str(tmp_path / "accounts" / "smith"),
            "physicians": ["Smith^John", "Smith^J"],
            "owner_uid": None,
            "owner_gid": None,
        }
    ]
    clash = store_server(tmp_path, "accounts", "add", "jones", "--physician", "SMITH^JOHN")
    assert clash.returncode == 1 and "already answers to account 'smith'" in clash.stderr
    reserved = store_server(tmp_path, "accounts", "add", "Guest")
    assert reserved.returncode == 1 and "reserved" in reserved.stderr
    assert store_server(tmp_path, "accounts", "remove", "smith").returncode == 0
    assert json.loads(store_server(tmp_path, "accounts", "list", "--json").stdout) == []
    missing = store_server(tmp_path, "accounts", "remove", "smith")
    assert missing.returncode == 1 and "no account 'smith'" in missing.stderr


def send_one(server: ServerUnderTest, path: Path) -> None:
    summary = send("127.0.0.1", server.port, [path], called_aet="STORE_SERVER")
    assert summary.failed == 0, summary.results


def test_seeded_account_with_home_elsewhere_modes_and_owner(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    # A home on another filesystem (tmpfs): the move becomes copy, fsync, rename.
    home = Path("/dev/shm") / f"store-server-test-{uuid.uuid4().hex[:8]}"
    try:
        server = start_server(
            accounts=[
                {
                    "name": "smith",
                    "physicians": ["Smith^John"],
                    "home": home,
                    "owner_uid": 4321,
                    "owner_gid": 8765,
                }
            ]
        )
        send_one(
            server,
            make_instance(tmp_path, study_uid=study_uid, ReferringPhysicianName="Smith^John"),
        )
        wait_until(lambda: not server.spool, message="not filed")
        [filed] = [p for p in home.rglob("*.dcm")]
        assert filed.relative_to(home).parts[1:] == ("Dicom", "001_T1_axial", "001-001-000001.dcm")
        assert stat.S_IMODE(filed.stat().st_mode) == 0o640
        assert stat.S_IMODE(filed.parent.stat().st_mode) == 0o750
        if os.geteuid() == 0:
            assert (filed.stat().st_uid, filed.stat().st_gid) == (4321, 8765)
            assert filed.parent.stat().st_uid == 4321
        [event] = server.call(events(server, Action.FILED))
        assert event.detail["message"]["path"] == str(filed)  # absolute: outside the root
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_later_instances_follow_the_binding(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    add_accounts(server, {"smith": ["Smith^John"], "jones": ["Jones^Anna"]})
    first = make_instance(tmp_path, study_uid=study_uid, RequestingPhysician="Smith^John")
    send_one(server, first)
    wait_for_filed(server, 1)
    later = make_instance(
        tmp_path, study_uid=study_uid, RequestingPhysician="Jones^Anna", InstanceNumber=2
    )
    send_one(server, later)
    filed = relative(server, wait_for_filed(server, 2))
    assert {path.split("/")[0] for path in filed} == {"smith"}
    assert len({path.split("/")[1] for path in filed}) == 1


def test_audit_trail_of_a_filed_instance(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    path = make_instance(tmp_path, study_uid=study_uid)
    send_one(server, path)
    [filed] = wait_for_filed(server, 1)
    trail = server.call(events(server, None, sop_instance_uid=sop_uid_of(path)))
    assert [event.action for event in trail] == [Action.RECEIVED, Action.FILED]
    received, filing = trail
    assert received.detail["calling_ae"] == "STORE_SCU"  # send's calling AE title
    assert received.study_instance_uid == study_uid
    assert filing.detail["message"]["path"] == str(filed.relative_to(server.settings.accounts_dir))


def test_filing_failure_is_retried_then_dead_lettered_and_the_file_kept(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server(bus={"max_attempts": 2, "retry_backoff": 0.05})
    # Where the Unknown account's home should be, something that is not a folder.
    server.settings.accounts_dir.mkdir(parents=True, exist_ok=True)
    (server.settings.accounts_dir / "Unknown").write_text("not a folder")
    send_one(server, make_instance(tmp_path, study_uid=study_uid))
    assert server.running is not None
    bus = server.running.bus

    wait_until(lambda: server.call(bus.dead_letters("router")), message="never dead-lettered")
    [letter] = server.call(bus.dead_letters("router"))
    assert "gave up after 2 attempts" in letter.reason and "cannot write" in letter.reason
    assert len(server.spool) == 1  # still safe in the spool for the administrator


async def events(
    server: ServerUnderTest, action: Action | None, sop_instance_uid: str | None = None
) -> list[AuditEvent]:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        return await history(connection, action=action, sop_instance_uid=sop_instance_uid)


def test_dead_letters_command_lists_and_requeues_on_rabbitmq(
    start_server: StartServer, tmp_path: Path, study_uid: str, amqp_url: str, exchange: str
) -> None:
    server = start_server(
        Backend("production", amqp_url, exchange, None),
        bus={"max_attempts": 1},
    )
    blocker = server.settings.accounts_dir / "Unknown"
    server.settings.accounts_dir.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    send_one(server, make_instance(tmp_path, study_uid=study_uid))
    assert server.running is not None
    wait_until(lambda: server.call(server.running.bus.dead_letters("router")), message="dead")
    environment = ["--bus", amqp_url, "--data-dir", str(server.settings.data_dir)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return cli.store_server(
            "dead-letters",
            "router",
            *extra,
            *environment,
            env={"STORE_SERVER_BUS__EXCHANGE": exchange},
        )

    [listed] = json.loads(run("--json").stdout)
    assert listed["routing_key"] == "instance.received"
    assert "cannot write" in listed["reason"]
    blocker.unlink()  # the administrator mends the cause
    requeued = run("--requeue")
    assert requeued.returncode == 0 and requeued.stdout.startswith("1 message(s)")
    wait_for_filed(server, 1)
    assert json.loads(run("--json").stdout) == []
