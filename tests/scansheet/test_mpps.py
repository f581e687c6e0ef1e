"""MPPS: a modality's COMPLETED step completes its study before the stable age; a
DISCONTINUED one is recorded and leaves the study to its stable age. pynetdicom plays the
modality (Debian's DCMTK has no MPPS SCU)."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from shared.db.schema import mpps_steps
from tests.conftest import Backend
from tests.scansheet.conftest import FAST, make_study, send_all, sheet_json_path, wait_for_sheet
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, StartServer

SLOW = {**FAST, "stable_age": 120.0}  # MPPS must not wait for this


def step_attributes(study_uid: str) -> Dataset:
    attributes = Dataset()
    scheduled = Dataset()
    scheduled.StudyInstanceUID = study_uid
    attributes.ScheduledStepAttributesSequence = [scheduled]
    attributes.PerformedProcedureStepID = "PPS1"
    attributes.PerformedProcedureStepStatus = "IN PROGRESS"
    attributes.Modality = "MR"
    return attributes


def performed(status: str, paths: list[Path]) -> Dataset:
    """An N-SET modification list: the new status and every instance the step made."""
    by_series: dict[str, list[Dataset]] = {}
    for path in paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        image = Dataset()
        image.ReferencedSOPClassUID = MRImageStorage
        image.ReferencedSOPInstanceUID = header.SOPInstanceUID
        by_series.setdefault(str(header.SeriesInstanceUID), []).append(image)
    series = []
    for series_uid, images in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedImageSequence = images
        series.append(item)
    modification = Dataset()
    modification.PerformedProcedureStepStatus = status
    modification.PerformedSeriesSequence = series
    return modification


def run_step(server: ServerUnderTest, study_uid: str, status: str, paths: list[Path]) -> str:
    """N-CREATE IN PROGRESS, then N-SET ``status``; the step's UID."""
    ae = AE(ae_title="MR_ROOM2")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    association = ae.associate("127.0.0.1", server.port, ae_title="STORE_SERVER")
    assert association.is_established
    step_uid = generate_uid()
    try:
        created, _ = association.send_n_create(
            step_attributes(study_uid), ModalityPerformedProcedureStep, step_uid
        )
        assert created.Status == 0x0000
        updated, _ = association.send_n_set(
            performed(status, paths), ModalityPerformedProcedureStep, step_uid
        )
        assert updated.Status == 0x0000
    finally:
        association.release()
    return str(step_uid)


def step_row(server: ServerUnderTest, step_uid: str) -> sa.Row[tuple[object, ...]] | None:
    async def read() -> sa.Row[tuple[object, ...]] | None:
        assert server.running is not None
        async with server.running.index.connect() as connection:
            query = sa.select(mpps_steps).where(mpps_steps.c.step_uid == step_uid)
            return (await connection.execute(query)).one_or_none()

    return server.call(read())


def test_mpps_completed_completes_the_study_before_its_stable_age(
    start_server: StartServer, backend: Backend, tmp_path: Path
) -> None:
    server = start_server(backend, scansheet=SLOW)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=2, per_series=2)
    send_all(server, paths)
    started = time.monotonic()
    step_uid = run_step(server, study_uid, "COMPLETED", paths)
    sheet = wait_for_sheet(server, within=20, instances="4")
    assert time.monotonic() - started < SLOW["stable_age"]
    assert [row["images"] for row in sheet["series"]] == [2, 2]
    [announced] = server.log_events("monitor.announced")
    assert announced["reason"] == "mpps"
    row = step_row(server, step_uid)
    assert row is not None and row.status == "COMPLETED" and row.announced_at is not None


def test_a_step_completed_before_its_instances_arrive_waits_for_them(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(scansheet=SLOW)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=2, per_series=2)
    run_step(server, study_uid, "COMPLETED", paths)
    send_all(server, paths[:3])
    time.sleep(1.0)  # three of four indexed: not complete yet
    assert sheet_json_path(server) is None
    send_all(server, paths[3:])
    sheet = wait_for_sheet(server, within=20, instances="4")
    assert len(sheet["series"]) == 2


def test_discontinued_is_recorded_and_leaves_the_study_to_its_stable_age(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(scansheet=SLOW)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=1, per_series=2)
    send_all(server, paths)
    step_uid = run_step(server, study_uid, "DISCONTINUED", paths)
    wait_until(lambda: step_row(server, step_uid) is not None, 10, "the step recorded")
    time.sleep(1.0)
    row = step_row(server, step_uid)
    assert row is not None and row.status == "DISCONTINUED" and row.announced_at is None
    assert row.study_instance_uids == [study_uid]
    assert sheet_json_path(server) is None


def test_a_step_not_created_in_progress_is_refused(start_server: StartServer) -> None:
    server = start_server(scansheet=SLOW)
    ae = AE(ae_title="MR_ROOM2")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    association = ae.associate("127.0.0.1", server.port, ae_title="STORE_SERVER")
    attributes = step_attributes(generate_uid())
    attributes.PerformedProcedureStepStatus = "FINISHED"
    try:
        status, _ = association.send_n_create(
            attributes, ModalityPerformedProcedureStep, generate_uid()
        )
    finally:
        association.release()
    assert status.Status == 0x0106  # invalid attribute value
    assert server.log_events("mpps.refused")
