"""A batch's file names, claimed together, follow the one-by-one rule on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydicom.uid import generate_uid

from services.router import batch_claims
from services.router.claims import Placement, Slot
from shared.db.engine import open_index
from shared.db.schema import placements

STUDY = "1.2.3"
SERIES = "1.2.3.1"


def slot(number: int | None, echo: int = 1) -> Slot:
    return Slot(STUDY, SERIES, "Study/Dicom/001_T1", 1, echo, number)


async def held_by_earlier_filings(database_url: str) -> None:
    """The series holds numbers 3 (instance "held") and 5 (another instance)."""
    engine = await open_index(database_url, 10)
    earlier = {"held": 3, str(generate_uid()): 5}
    async with engine.begin() as connection:
        for sop_uid, number in earlier.items():
            await connection.execute(
                placements.insert().values(
                    sop_instance_uid=sop_uid,
                    study_instance_uid=STUDY,
                    series_instance_uid=SERIES,
                    echo_number=1,
                    number=number,
                    path=f"Study/Dicom/001_T1/001-001-{number:06d}.dcm",
                    spool_name=f"earlier-{number}",
                    filed_at=datetime.now(UTC),
                )
            )
    await engine.dispose()


async def claim(database_url: str, wanted: list[batch_claims.Wanted]) -> list[Placement]:
    engine = await open_index(database_url, 10)
    try:
        async with engine.begin() as connection:
            return await batch_claims.claim_placements(connection, wanted)
    finally:
        await engine.dispose()


def names(placed: list[Placement]) -> list[str]:
    return [p.path.rsplit("/", 1)[1] for p in placed]


async def test_own_number_when_free_else_the_next_free_count(database_url: str) -> None:
    await held_by_earlier_filings(database_url)
    placed = await claim(
        database_url,
        [
            ("a", slot(1), "spool-a"),
            ("b", slot(5), "spool-b"),  # 5 is held: next free count
            ("c", slot(None), "spool-c"),  # no number: first free count, 1 is a's now
            ("held", slot(3), "spool-again"),  # a re-send: the file it holds
            ("d", slot(6), "spool-d"),  # its own number, free
            ("e", slot(1, echo=2), "spool-e"),  # echo 2 counts on its own
        ],
    )
    assert names(placed) == [
        "001-001-000001.dcm",
        "001-001-000007.dcm",
        "001-001-000002.dcm",
        "001-001-000003.dcm",
        "001-001-000006.dcm",
        "001-002-000001.dcm",
    ]
    assert [p.created for p in placed] == [True, True, True, False, True, True]
    assert placed[3].spool_name == "earlier-3"  # the filing router decides: replace or keep


async def test_the_same_instance_twice_in_a_batch_gets_one_file(database_url: str) -> None:
    placed = await claim(database_url, [("x", slot(10), "first"), ("x", slot(10), "second")])
    assert [(p.path, p.spool_name, p.created) for p in placed] == [
        ("Study/Dicom/001_T1/001-001-000010.dcm", "first", True),
        ("Study/Dicom/001_T1/001-001-000010.dcm", "first", False),
    ]


async def test_a_row_inserted_meanwhile_by_another_router_wins(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await held_by_earlier_filings(database_url)

    async def blind(*args: object) -> dict[str, Placement]:
        return {}  # as if "held" was placed after this router looked

    monkeypatch.setattr(batch_claims, "_held", blind)
    placed = await claim(database_url, [("held", slot(3), "late"), ("f", slot(4), "spool-f")])
    assert [(p.path.rsplit("/", 1)[1], p.spool_name, p.created) for p in placed] == [
        ("001-001-000003.dcm", "earlier-3", False),
        ("001-001-000004.dcm", "spool-f", True),
    ]
