"""File names: series, echo and instance numbers, collisions, re-sends; never two copies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from shared.db.audit import Action, AuditEvent, history
from shared.dicom.net import send
from shared.messages import InstanceReceived
from tests.conftest import Backend
from tests.router.conftest import (
    StartServer,
    add_accounts,
    filed_files,
    make_instance,
    relative,
    sop_uid_of,
    wait_for_filed,
)
from tests.support import dcmtk
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest


def send_all(server: ServerUnderTest, paths: list[Path]) -> None:
    summary = send("127.0.0.1", server.port, paths, called_aet="STORE_SERVER")
    assert summary.failed == 0, [r for r in summary.results if r.outcome != "sent"]


def names(server: ServerUnderTest, count: int) -> list[str]:
    return [path.split("/", 2)[2] for path in relative(server, wait_for_filed(server, count))]


def test_missing_numbers_and_collisions(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    series = str(generate_uid())
    other_series = str(generate_uid())
    paths = [
        make_instance(tmp_path, study_uid=study_uid, series_uid=series, InstanceNumber=7),
        # The same instance number again, another instance: the next free count.
        make_instance(tmp_path, study_uid=study_uid, series_uid=series, InstanceNumber=7),
        make_instance(tmp_path, study_uid=study_uid, series_uid=series, InstanceNumber=None),
        make_instance(tmp_path, study_uid=study_uid, series_uid=series, EchoNumbers=2),
        make_instance(
            tmp_path,
            study_uid=study_uid,
            series_uid=other_series,
            SeriesNumber=None,
            SeriesDescription=None,
            ProtocolName="localizer",
            InstanceNumber=1234567,
        ),
    ]
    for path in paths:  # one at a time, so the expected numbers are deterministic
        send_all(server, [path])
        wait_until(lambda: not server.spool, message="not filed")
    assert sorted(names(server, 5)) == [
        "Dicom/000_localizer/000-001-1234567.dcm",  # wider numbers widen the field
        "Dicom/001_T1_axial/001-001-000001.dcm",  # no instance number: first free count
        "Dicom/001_T1_axial/001-001-000007.dcm",
        "Dicom/001_T1_axial/001-001-000008.dcm",  # 7 was taken
        "Dicom/001_T1_axial/001-002-000001.dcm",  # echo 2
    ]


def test_two_series_with_one_name_get_two_folders(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    first = make_instance(tmp_path, study_uid=study_uid, SeriesNumber=3)
    second = make_instance(tmp_path, study_uid=study_uid, SeriesNumber=3)
    send_all(server, [first, second])
    assert sorted(names(server, 2)) == [
        "Dicom/003_T1_axial/003-001-000001.dcm",
        "Dicom/003_T1_axial_2/003-001-000001.dcm",
    ]


def test_same_study_sent_again_replaces_never_duplicates(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server()
    study = [
        make_instance(tmp_path, study_uid=study_uid, InstanceNumber=n, SeriesNumber=1)
        for n in range(1, 6)
    ]
    send_all(server, study)
    first = names(server, 5)
    # Changed content, same SOP Instance UIDs: the modality re-sends a corrected study.
    for path in study:
        dataset = pydicom.dcmread(path)
        dataset.SeriesDescription = "T1 axial corrected"
        dataset.save_as(path)
    send_all(server, study)
    wait_until(lambda: not server.spool, message="re-send not filed")
    assert names(server, 5) == first  # same paths, one copy each
    assert all(
        pydicom.dcmread(p).SeriesDescription == "T1 axial corrected"
        for p in wait_for_filed(server, 5)
    )
    events = server.call(audit(server, Action.REPLACED))
    assert sorted(e.sop_instance_uid or "" for e in events) == sorted(map(sop_uid_of, study))


def test_keep_first_drops_the_resent_copy(
    start_server: StartServer, tmp_path: Path, study_uid: str
) -> None:
    server = start_server(router={"on_duplicate": "keep-first"})
    path = make_instance(tmp_path, study_uid=study_uid, SeriesDescription="first")
    send_all(server, [path])
    wait_for_filed(server, 1)
    dataset = pydicom.dcmread(path)
    dataset.SeriesDescription = "second"
    dataset.save_as(path)
    send_all(server, [path])
    wait_until(lambda: not server.spool, message="re-send not handled")
    [kept] = wait_for_filed(server, 1)
    assert pydicom.dcmread(kept).SeriesDescription == "first"
    assert len(server.call(audit(server, Action.DUPLICATE))) == 1


def test_a_spooled_file_that_cannot_be_read_is_quarantined_with_its_reason(
    start_server: StartServer,
) -> None:
    """The receiver spools only what it could decode; a file damaged in the spool afterwards
    (a disk error, a hand's edit) is set aside with its reason, never deleted."""
    server = start_server()
    spooled = server.settings.spool_dir / "00000000000000000001-damaged.dcm"
    spooled.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    message = InstanceReceived(
        sop_instance_uid="1.2.3.4",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        spool_name=spooled.name,
        size=196,
        received_at=datetime.now(UTC),
        calling_ae="MR_ROOM2",
        called_ae="STORE_SERVER",
        peer_address="127.0.0.1",
        peer_port=40000,
    )
    assert server.running is not None
    server.call(server.running.bus.publish(message))
    wait_until(lambda: server.call(audit(server, Action.QUARANTINED)), message="not audited")
    [reason] = server.settings.quarantine_dir.glob("*.reason.json")
    assert json.loads(reason.read_text())["reason"] == "Study Instance UID is missing or not a UID"
    [event] = server.call(audit(server, Action.QUARANTINED))
    assert event.sop_instance_uid == "1.2.3.4"
    assert not server.spool


def test_refusals_at_the_door_are_audited(
    start_server: StartServer, backend: Backend, tmp_path: Path, study_uid: str
) -> None:
    server = start_server(backend)
    path = make_instance(tmp_path, study_uid=study_uid, SeriesInstanceUID=None)
    outcome = dcmtk.storescu(server.port, [path], calling_ae="MR_ROOM2")
    assert outcome.store_statuses == ["Error: DataSetDoesNotMatchSOPClass"]
    wait_until(lambda: server.call(audit(server, Action.REFUSED)), message="refusal not audited")
    [event] = server.call(audit(server, Action.REFUSED))
    assert event.sop_instance_uid == sop_uid_of(path)
    assert event.detail["status"] == "0xA900"
    assert event.detail["reason"] == "Series Instance UID is missing"
    assert event.detail["calling_ae"] == "MR_ROOM2"
    assert event.detail["quarantined"] is None
    assert filed_files(server) == [] and not server.spool


async def audit(server: ServerUnderTest, action: Action) -> list[AuditEvent]:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        return await history(connection, action=action)


def test_numbers_are_counted_per_series_folder_never_across_accounts(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Three studies of one patient whose folders are named alike (same date and accession,
    as for two physicians' orders), in three accounts: each account's files count from 1."""
    server = start_server()
    add_accounts(server, {"smith": ["Smith^John"], "jones": ["Jones^Ann"]})
    for physician in ("Smith^John", "Jones^Ann", "Nobody^Known"):
        study = str(generate_uid())
        series = str(generate_uid())
        send_all(
            server,
            [
                make_instance(
                    tmp_path / physician,
                    study_uid=study,
                    series_uid=series,
                    RequestingPhysician=physician,
                    InstanceNumber=None,
                )
                for _ in range(3)
            ],
        )
        wait_until(lambda: not server.spool, message="not filed")
    filed = relative(server, wait_for_filed(server, 9))
    by_account: dict[str, list[str]] = {}
    for path in filed:
        account = path.rpartition("/" + path.split("/")[-4] + "/")[0]
        by_account.setdefault(account, []).append(path.rsplit("/", 1)[1])
    assert {account: sorted(names) for account, names in by_account.items()} == {
        account: ["001-001-000001.dcm", "001-001-000002.dcm", "001-001-000003.dcm"]
        for account in ("smith", "jones", "Guest/Nobody_Known")
    }
