"""``store-server studies`` and ``store-server study`` over an index the indexer filled."""

from __future__ import annotations

import json
from pathlib import Path

from tests.indexer.conftest import indexer, publish
from tests.support.cli import store_server
from tests.support.filing import (
    file_instance,
    indexer_settings,
    mr_study,
    unique_exchange,
    wait_for_instances,
)


async def test_studies_and_study_show_what_was_indexed(tmp_path: Path) -> None:
    settings = indexer_settings(tmp_path, "memory://", unique_exchange(), None)
    brain = mr_study(3, 2, patient="Doe^Jane")
    knee = mr_study(1, 2, patient="Roe^Richard")
    filed = [file_instance(settings.accounts_dir, ds) for ds in brain]
    filed += [file_instance(settings.accounts_dir, ds, account="jones") for ds in knee]
    async with indexer(settings) as running:
        await publish(running, filed)
        await wait_for_instances(running.index, 8)

    data_dir = ("--data-dir", str(tmp_path))
    listed = store_server("studies", "--json", *data_dir)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {row["study_instance_uid"] for row in rows} == {
        brain[0].StudyInstanceUID,
        knee[0].StudyInstanceUID,
    }
    by_patient = json.loads(
        store_server("studies", "--patient", "doe^j", "--json", *data_dir).stdout
    )
    assert [row["patient_name"] for row in by_patient] == ["Doe^Jane"]
    assert [(r["series_count"], r["instance_count"]) for r in by_patient] == [(3, 6)]
    by_account = json.loads(
        store_server("studies", "--account", "jones", "--json", *data_dir).stdout
    )
    assert [row["patient_name"] for row in by_account] == ["Roe^Richard"]
    future = store_server("studies", "--since", "2999-01-01", "--json", *data_dir)
    assert json.loads(future.stdout) == []
    table = store_server("studies", *data_dir)
    assert "Doe^Jane" in table.stdout and "2 studies" in table.stdout

    shown = store_server("study", brain[0].StudyInstanceUID, "--json", *data_dir)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert [s["number"] for s in detail["series"]] == [1, 2, 3]
    assert [s["instance_count"] for s in detail["series"]] == [2, 2, 2]
    assert [s["repetition_time"] for s in detail["series"]] == [600, 700, 800]
    assert detail["patient"]["birth_date"] == "19800214"
    text = store_server("study", brain[0].StudyInstanceUID, *data_dir).stdout
    assert "3 series, 6 instances" in text and "T2 axial" in text

    missing = store_server("study", "1.2.3.4", *data_dir)
    assert missing.returncode == 1 and "no study 1.2.3.4" in missing.stderr
    bad = store_server("studies", "--since", "last week", *data_dir)
    assert bad.returncode == 2 and "--since" in bad.stderr


async def test_patients_are_found_whatever_the_case_and_accents(tmp_path: Path) -> None:
    """`studies --patient` folds case and accents as physician matching does."""
    settings = indexer_settings(tmp_path, "memory://", unique_exchange(), None)
    studies = [
        ds
        for patient in ("Müller^Jörg", "Mueller^Anna", "Ångström^Åsa", "山田^太郎")
        for ds in mr_study(1, 1, patient=patient)
    ]
    for ds in studies:
        ds.SpecificCharacterSet = "ISO_IR 192"
    filed = [file_instance(settings.accounts_dir, ds, folder=str(ds.PatientID)) for ds in studies]
    async with indexer(settings) as running:
        await publish(running, filed)
        await wait_for_instances(running.index, len(filed))

    def found(text: str) -> list[str]:
        listed = store_server("studies", "--patient", text, "--json", "--data-dir", str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        return sorted(row["patient_name"] for row in json.loads(listed.stdout))

    assert found("muller") == ["Müller^Jörg"]
    assert found("MÜLLER") == ["Müller^Jörg"]
    assert found("jorg") == ["Müller^Jörg"]
    assert found("angstrom asa") == ["Ångström^Åsa"]
    assert found("山田") == ["山田^太郎"]
    assert found("PID-Mueller") == ["Mueller^Anna"]
    assert found("100%_") == []
