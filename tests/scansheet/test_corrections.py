"""A corrected re-send is the truth everywhere: the file, the index and the scan sheet."""

from __future__ import annotations

from pathlib import Path

import pydicom
import sqlalchemy as sa
from pydicom.uid import generate_uid

from shared.db.schema import instances, patients, series, studies
from tests.conftest import Backend
from tests.scansheet.conftest import FAST, make_study, send_all, wait_for_sheet
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, StartServer


def test_a_corrected_resend_reaches_the_index_and_the_sheet(
    start_server: StartServer, backend: Backend, tmp_path: Path
) -> None:
    server = start_server(backend, scansheet=FAST)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=2, per_series=2, PatientID="WRONG-1")
    send_all(server, paths)
    first = wait_for_sheet(server, instances="4")
    assert first["patient"]["id"] == "WRONG-1"

    # The technologist fixes the patient and a series description, and sends it all again.
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.PatientName, dataset.PatientID = "ROE^RICHARD", "P-0042"
        if dataset.SeriesNumber == 2:
            dataset.SeriesDescription = "T2 sagittal"
        dataset.save_as(path)
    send_all(server, paths)
    wait_until(lambda: sheet_says(server, "P-0042"), 30, "a sheet with the corrected patient")
    sheet = wait_for_sheet(server, instances="4")
    assert sheet["patient"]["id"] == "P-0042"
    assert sheet["patient"]["name"].upper().startswith("ROE")
    assert [row["description"] for row in sheet["series"]] == ["T1 axial", "T2 sagittal"]

    filed = sorted(server.settings.accounts_dir.rglob("*.dcm"))
    assert len(filed) == 4
    assert {pydicom.dcmread(p).PatientID for p in filed} == {"P-0042"}
    row = server.call(index_view(server, study_uid))
    assert row["patient"] == ("ROE^RICHARD", "P-0042")
    assert row["series"] == ["T1 axial", "T2 sagittal"]
    assert row["headers"] == {"P-0042"}
    assert row["instances"] == 4


def sheet_says(server: ServerUnderTest, patient_id: str) -> bool:
    found = sorted(server.settings.accounts_dir.rglob("scansheet.json"))
    return bool(found) and f'"id": "{patient_id}"' in found[0].read_text(encoding="utf-8")


async def index_view(server: ServerUnderTest, study_uid: str) -> dict[str, object]:
    assert server.running is not None
    async with server.running.index.connect() as connection:
        study = (
            await connection.execute(
                sa.select(
                    studies.c.id, studies.c.instance_count, patients.c.name, patients.c.patient_id
                )
                .join(patients, patients.c.id == studies.c.patient_fk)
                .where(studies.c.study_instance_uid == study_uid)
            )
        ).one()
        descriptions = await connection.scalars(
            sa.select(series.c.description)
            .where(series.c.study_fk == study.id)
            .order_by(series.c.number)
        )
        headers = await connection.scalars(
            sa.select(instances.c.header).join(series).where(series.c.study_fk == study.id)
        )
        return {
            "patient": (study.name, study.patient_id),
            "series": list(descriptions),
            "headers": {header["00100020"]["Value"][0] for header in headers},
            "instances": study.instance_count,
        }
