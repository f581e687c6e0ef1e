"""The queries a workstation makes use the index's indexes, on both databases: what keeps
them fast on a large archive is the plan, which this checks (timings are the benchmark's)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from services.receiver.catalog import Query, _columns, _select
from services.receiver.matching import Condition
from shared.db.engine import open_index

# (level, key, VR, value) -> the table searched through an index, and that index's name
CASES = [
    ("STUDY", "StudyInstanceUID", "UI", "1.2.3", "studies", "uq_studies_study_instance_uid"),
    ("STUDY", "PatientID", "LO", "PID-7", "patients", "ix_patients_patient_id"),
    ("STUDY", "StudyDate", "DA", "20260101-20260131", "studies", "ix_studies_study_date"),
    ("STUDY", "AccessionNumber", "SH", "ACC-1", "studies", "ix_studies_accession_number"),
    ("STUDY", "PatientName", "PN", "muller*", "patients", "ix_patients_search_text"),
    ("SERIES", "StudyInstanceUID", "UI", "1.2.3", "series", "ix_series_study_fk"),
    ("IMAGE", "SeriesInstanceUID", "UI", "1.2.3.4", "instances", "ix_instances_series_fk"),
    ("IMAGE", "SOPInstanceUID", "UI", "1.2.3.4.5", "instances", "uq_instances_sop_instance_uid"),
]


async def plan(url: str, level: str, condition: Condition) -> str:
    engine = await open_index(url, 10)
    try:
        async with engine.connect() as connection:
            dialect = connection.dialect.name
            statement = _select(
                Query(level, True, [condition], [condition.keyword]), _columns(level), dialect
            )
            sql = str(
                statement.compile(
                    connection.sync_engine if False else engine.sync_engine,
                    compile_kwargs={"literal_binds": True},
                )
            )
            if dialect == "sqlite":
                rows = await connection.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))
                return "\n".join(str(row[-1]) for row in rows)
            await connection.execute(sa.text("SET enable_seqscan = off"))
            rows = await connection.execute(sa.text(f"EXPLAIN {sql}"))
            return "\n".join(str(row[0]) for row in rows)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("level", "keyword", "vr", "value", "table", "index"), CASES)
def test_each_usual_key_is_found_through_an_index(
    database_url: str, level: str, keyword: str, vr: str, value: str, table: str, index: str
) -> None:
    found = asyncio.run(plan(database_url, level, Condition(keyword, vr, value)))
    if database_url.startswith("sqlite"):
        # SQLite names a unique constraint's index its own way (sqlite_autoindex_...).
        assert f"SCAN {table}" not in found and f"SEARCH {table} USING" in found, found
    else:
        assert index in found, found
