"""The indexer on both backends: what a site queries is in the index, exactly once.

Instances are filed as the router files them (files at the router's layout, ``instance.filed``
messages, audit events) and the indexer runs as ``store-server run`` starts it.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from pydicom import dcmread

from services.settings import Settings
from shared.db.schema import instances, patients, series, studies
from tests.indexer.conftest import indexed_events_of, indexer, publish
from tests.support.filing import FOLDER, counts, file_instance, mr_study, wait_for_instances
from tests.support.services import sample

SAMPLES = ("MR_small.dcm", "CT_small.dcm", "emri_small.dcm", "SC_rgb.dcm")


async def test_filed_instances_are_indexed_with_the_values_of_their_files(
    settings: Settings,
) -> None:
    accounts = settings.accounts_dir
    study = mr_study(3, 4)
    filed = [file_instance(accounts, ds) for ds in study]
    filed += [file_instance(accounts, sample(name), folder=name) for name in SAMPLES]
    async with indexer(settings) as running:
        await publish(running, filed)
        await wait_for_instances(running.index, len(filed))
        await asyncio.sleep(0.3)
        assert await counts(running.index) == (1 + len(SAMPLES), 3 + len(SAMPLES), len(filed))
        async with running.index.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(studies, patients.c.name.label("patient_name"))
                    .join(patients)
                    .where(studies.c.study_instance_uid == study[0].StudyInstanceUID)
                )
            ).one()
            assert (row.series_count, row.instance_count, row.modalities) == (3, 12, "MR")
            assert (row.patient_name, row.description, row.accession_number) == (
                "Doe^Jane",
                "Brain MRI",
                "ACC42",
            )
            assert (row.account, row.study_folder) == ("smith", f"smith/{FOLDER}")
            assert row.requesting_physician == row.referring_physician == "Smith^John"
            assert (row.institution, row.station) == ("General Hospital", "MR_ROOM2")
            assert row.conflicts is None
            rows = (
                await connection.execute(
                    sa.select(series).where(series.c.study_fk == row.id).order_by(series.c.number)
                )
            ).all()
            for number, one in enumerate(rows, start=1):
                assert one.instance_count == 4
                assert (one.repetition_time, one.echo_time) == (500 + 100 * number, 10 + number)
                assert (one.flip_angle, one.slice_thickness) == (15 + number, 1 + number / 2)
                assert (one.inversion_time, one.field_strength, one.rows) == (900, 3, 8)
                assert (one.pixel_spacing, one.sequence_name) == ("0.9\\0.9", f"*tse{number}")

            for name in SAMPLES:
                ds = dcmread(sample(name), stop_before_pixels=True)
                one = (
                    await connection.execute(
                        sa.select(instances, series.c.modality, series.c.rows)
                        .join(series)
                        .where(instances.c.sop_instance_uid == ds.SOPInstanceUID)
                    )
                ).one()
                assert (one.modality, one.rows) == (ds.Modality, ds.Rows)
                assert one.path == f"smith/{name}/Dicom/{int(ds.SeriesNumber):03d}_Series/" + (
                    f"{int(ds.SeriesNumber):03d}-001-{int(ds.get('InstanceNumber') or 1):06d}.dcm"
                )
                assert one.size == (accounts / one.path).stat().st_size
                header = one.header
                assert header["0020000D"]["Value"] == [ds.StudyInstanceUID]
                assert "7FE00010" not in header  # bulk data left out
                if "PatientName" in ds and ds.PatientName:
                    assert header["00100010"]["Value"][0]["Alphabetic"] == str(ds.PatientName)
    events = await indexed_events_of(settings)
    assert sorted(e.sop_instance_uid or "" for e in events) == sorted(
        m.sop_instance_uid for m in filed
    )
