"""Values real modalities send beyond their VR's limits, of the wrong VR or in a broken
character set: every instance is indexed, and no start-up is held hostage by one of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from services.settings import Settings
from shared.db.engine import open_index
from shared.db.schema import instances, patients, series, studies
from shared.messages import InstanceFiled
from tests.indexer.conftest import indexer, publish
from tests.support.filing import (
    counts,
    file_instance,
    mr_study,
    record_filing,
    wait_for_instances,
)

LONG_ID = "1.2.840.113619.2.55.3.604688119.971.1259134513.932.37218812093.85"  # 65
assert len(LONG_ID) == 65


# Set a keyword to a value, or write (tag, VR, bytes) as a careless modality would.
Edit = tuple[str, object] | tuple[int, str, bytes]

# One instance per case, each its own study.
CASES: dict[str, list[Edit]] = {
    "patient id of 65 characters": [("PatientID", LONG_ID)],
    "patient id of 5000 characters": [("PatientID", "P" * 5000)],
    "issuer of 300 characters": [("IssuerOfPatientID", "I" * 300)],
    "name of 10000 characters with a NUL": [("PatientName", "Doe^" + "J\x00" * 5000)],
    "accession of 3000 characters": [("AccessionNumber", "A" * 3000)],
    "study date as 2026-11-25": [("StudyDate", "2026-11-25")],
    "study date of 400 characters": [("StudyDate", "9" * 400)],
    "study time of 500 characters": [("StudyTime", "1" * 500)],
    "modality of 300 characters": [("Modality", "M" * 300)],
    "sex and birth date too long": [("PatientSex", "F" * 100), ("PatientBirthDate", "1" * 100)],
    "body part and pixel spacing too long": [
        ("BodyPartExamined", "B" * 300),
        ("PixelSpacing", ["1.5"] * 200),
    ],
    "series number not a number": [(0x00200011, "IS", b"abc ")],
    "repetition time NaN, echo time inf": [
        (0x00180080, "DS", b"NaN "),
        (0x00180081, "DS", b"inf "),
    ],
    "patient name with VR OB": [(0x00100010, "OB", b"\x00\xff" * 40)],
    "patient id with VR US": [(0x00100020, "US", b"\x01\x00")],
    "unknown character set": [
        ("SpecificCharacterSet", "ISO_IR 999"),
        (0x00100010, "PN", b"M\xfcller^J\xf6rg"),
    ],
    "broken UTF-8": [
        ("SpecificCharacterSet", "ISO_IR 192"),
        (0x00100010, "PN", b"M\xc3\x28ller^\xff\xfe"),
        (0x00081030, "LO", b"\xed\xa0\x80 lone surrogate "),
    ],
    "broken ISO 2022 escape": [
        ("SpecificCharacterSet", ["", "ISO 2022 IR 87"]),
        (0x00100010, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$B\x1b"),
    ],
    "description of 200 kB": [("StudyDescription", "D" * 200_000)],
}


def apply(edits: list[Edit]) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for change in edits:
            if len(change) == 2:
                setattr(ds, str(change[0]), change[1])
            else:
                tag, vr, value = change
                assert isinstance(tag, int) and isinstance(value, bytes)
                ds[tag] = RawDataElement(Tag(tag), str(vr), len(value), value, 0, False, True)

    return edit


def hostile_filings(settings: Settings) -> list[tuple[str, InstanceFiled]]:
    """The cases, each filed as the router would file it, in a study of its own."""
    accounts = settings.accounts_dir
    filed: list[tuple[str, InstanceFiled]] = []
    for case, edits in CASES.items():
        [ds] = mr_study(1, 1, patient=f"Case^{len(filed)}")
        folder = f"case{len(filed)}"
        filed.append((case, file_instance(accounts, ds, folder=folder, edit=apply(edits))))
    return filed


async def test_every_hostile_value_is_indexed(settings: Settings) -> None:
    messages = [message for _, message in hostile_filings(settings)]
    async with indexer(settings) as running:
        await publish(running, messages)
        await wait_for_instances(running.index, len(messages))
        await asyncio.sleep(0.3)
        assert await counts(running.index) == (len(messages),) * 3
        assert await running.bus.dead_letters("indexer") == []
        async with running.index.connect() as connection:
            ids = set(await connection.scalars(sa.select(patients.c.patient_id)))
            assert {LONG_ID, "P" * 5000} <= ids  # kept whole, each its own patient
            dates = set(await connection.scalars(sa.select(studies.c.study_date)))
            assert "20261125" in dates  # a dashed date is read as the date it is
            headers = await connection.scalars(sa.select(instances.c.header))
            assert all(isinstance(header, dict) and header for header in headers)
            numbers = set(await connection.scalars(sa.select(series.c.number)))
            assert None in numbers


async def test_two_long_ids_alike_in_their_first_64_characters_are_two_patients(
    settings: Settings,
) -> None:
    first, second = mr_study(1, 1, patient="One^A"), mr_study(1, 1, patient="Two^B")
    first[0].PatientID, second[0].PatientID = LONG_ID, LONG_ID[:-1] + "9"
    filed = [
        file_instance(settings.accounts_dir, ds, folder=ds.PatientName) for ds in (*first, *second)
    ]
    async with indexer(settings) as running:
        await publish(running, filed)
        await wait_for_instances(running.index, 2)
        async with running.index.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(patients.c.patient_id, patients.c.name).order_by(patients.c.name)
                )
            ).all()
    assert [tuple(row) for row in rows] == [
        (LONG_ID, "One^A"),
        (LONG_ID[:-1] + "9", "Two^B"),
    ]


async def test_start_up_is_not_held_hostage_by_what_cannot_be_indexed(settings: Settings) -> None:
    """Filed instances the index lacks (the bus lost their messages) include hostile ones and
    one whose file is now a folder: the indexer starts, indexes what it can, twice over."""
    filed = [message for _, message in hostile_filings(settings)]
    study = mr_study(1, 2)
    filed += [file_instance(settings.accounts_dir, ds) for ds in study]
    broken = settings.accounts_dir / filed[-1].path
    broken.unlink()
    broken.mkdir()
    engine = await open_index(settings.database_url, 10)
    try:
        await record_filing(engine, filed)
    finally:
        await engine.dispose()
    for _ in range(2):
        async with indexer(settings) as running:
            await wait_for_instances(running.index, len(filed) - 1)
            await asyncio.sleep(0.3)
            assert (await counts(running.index))[2] == len(filed) - 1
