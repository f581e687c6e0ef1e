"""C-FIND from a workstation (DCMTK findscu) at every level of both information models: what
a radiologist's workstation lists is what the index holds."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.query import findscu
from tests.support.server import ServerUnderTest

Archive = Callable[..., ServerUnderTest]


def test_study_level_finds_a_patients_studies_by_name_without_case_or_accents(
    archive: Archive,
) -> None:
    server = archive()
    found = findscu(
        server.port,
        [
            "QueryRetrieveLevel=STUDY",
            "PatientName=muller*",
            "StudyInstanceUID",
            "StudyDate",
            "AccessionNumber",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances",
            "StudyDescription",
            "ReferringPhysicianName",
            "RetrieveAETitle",
        ],
    )
    assert found.final == "Success", found.output
    assert found.values("AccessionNumber") == ["ACC-A", "ACC-B"]
    by_accession = {m.AccessionNumber: m for m in found.matches}
    first = by_accession["ACC-A"]
    assert str(first.PatientName) == "Müller^Hans"
    assert first.SpecificCharacterSet == "ISO_IR 192"  # the query named none: UTF-8
    assert (first.NumberOfStudyRelatedSeries, first.NumberOfStudyRelatedInstances) == (2, 6)
    assert first.StudyDate == "20260110"
    assert first.ModalitiesInStudy == "MR"
    assert by_accession["ACC-B"].ModalitiesInStudy == "CT"
    assert str(first.ReferringPhysicianName) == "Smith^John"
    assert first.RetrieveAETitle == "STORE_SERVER"
    assert first.StudyDescription == "Brain MRI"


def test_study_keys_match_by_date_range_uid_list_modality_and_accession(archive: Archive) -> None:
    server = archive()

    def accessions(*keys: str) -> list[str]:
        found = findscu(server.port, ["QueryRetrieveLevel=STUDY", "AccessionNumber", *keys])
        assert found.final == "Success", found.output
        return found.values("AccessionNumber")

    assert accessions("StudyDate=20260201-20260331") == ["ACC-B", "ACC-C"]
    assert accessions("StudyDate=-20260215") == ["ACC-A", "ACC-B"]
    assert accessions("StudyDate=20260301-") == ["ACC-C"]
    assert accessions("StudyDate=20260110") == ["ACC-A"]
    assert accessions("ModalitiesInStudy=CT\\XA") == ["ACC-B"]
    assert accessions("AccessionNumber=ACC-?") == ["ACC-A", "ACC-B", "ACC-C"]
    assert accessions("AccessionNumber=acc-a") == []  # text other than names: as written
    assert accessions("PatientName=DOE^JANE") == ["ACC-C"]
    assert accessions("StudyTime=1500-1600") == ["ACC-C"]
    assert accessions("ReferringPhysicianName=SMITH^J*") == ["ACC-A", "ACC-B", "ACC-C"]
    assert accessions("ReferringPhysicianName=Jones*") == []
    assert accessions("PatientName=Nobody*") == []
    uids = findscu(server.port, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "AccessionNumber"])
    by_accession = {m.AccessionNumber: m.StudyInstanceUID for m in uids.matches}
    listed = f"StudyInstanceUID={by_accession['ACC-A']}\\{by_accession['ACC-C']}"
    assert accessions(listed) == ["ACC-A", "ACC-C"]


def test_series_and_image_levels_list_a_studys_content(archive: Archive) -> None:
    server = archive()
    studies = findscu(
        server.port, ["QueryRetrieveLevel=STUDY", "AccessionNumber=ACC-A", "StudyInstanceUID"]
    )
    study_uid = studies.matches[0].StudyInstanceUID
    series = findscu(
        server.port,
        [
            "QueryRetrieveLevel=SERIES",
            f"StudyInstanceUID={study_uid}",
            "SeriesInstanceUID",
            "SeriesNumber",
            "Modality",
            "SeriesDescription",
            "NumberOfSeriesRelatedInstances",
            "BodyPartExamined",
        ],
    )
    assert series.final == "Success", series.output
    assert series.values("SeriesNumber") == ["1", "2"]
    assert {m.NumberOfSeriesRelatedInstances for m in series.matches} == {3}
    assert {m.Modality for m in series.matches} == {"MR"}
    assert series.values("SeriesDescription") == ["T1 axial", "T2 axial"]
    second = next(m for m in series.matches if m.SeriesNumber == 2)
    images = findscu(
        server.port,
        [
            "QueryRetrieveLevel=IMAGE",
            f"StudyInstanceUID={study_uid}",
            f"SeriesInstanceUID={second.SeriesInstanceUID}",
            "SOPInstanceUID",
            "SOPClassUID",
            "InstanceNumber",
            "Rows",  # not a column of the index: read from the instance's header
            "EchoTime",
        ],
    )
    assert images.final == "Success", images.output
    assert images.values("InstanceNumber") == ["1", "2", "3"]
    assert {(m.Rows, float(m.EchoTime)) for m in images.matches} == {(8, 12.0)}
    assert {m.SOPClassUID for m in images.matches} == {"1.2.840.10008.5.1.4.1.1.4"}
    one = findscu(
        server.port,
        [
            "QueryRetrieveLevel=IMAGE",
            "InstanceNumber=2",
            f"SeriesInstanceUID={second.SeriesInstanceUID}",
            "SOPInstanceUID",
        ],
    )
    assert len(one.matches) == 1


def test_patient_root_lists_patients_with_their_counts(archive: Archive) -> None:
    server = archive()
    found = findscu(
        server.port,
        [
            "QueryRetrieveLevel=PATIENT",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances",
        ],
        model="-P",
    )
    assert found.final == "Success", found.output
    patients = {str(m.PatientName): m for m in found.matches}
    assert set(patients) == {"Müller^Hans", "Doe^Jane"}
    muller = patients["Müller^Hans"]
    assert (muller.NumberOfPatientRelatedStudies, muller.NumberOfPatientRelatedSeries) == (2, 3)
    assert muller.NumberOfPatientRelatedInstances == 8
    assert (muller.PatientBirthDate, muller.PatientSex) == ("19800214", "F")
    studies = findscu(
        server.port,
        [
            "QueryRetrieveLevel=STUDY",
            f"PatientID={patients['Doe^Jane'].PatientID}",
            "AccessionNumber",
        ],
        model="-P",
    )
    assert studies.values("AccessionNumber") == ["ACC-C"]


def test_a_level_the_model_lacks_is_refused_with_the_reason(archive: Archive) -> None:
    server = archive()
    found = findscu(server.port, ["QueryRetrieveLevel=PATIENT", "PatientName"], model="-S")
    assert found.matches == []
    assert found.final == "Error: DataSetDoesNotMatchSOPClass", found.output
    missing = findscu(server.port, ["PatientName"], model="-S")
    assert missing.matches == [] and missing.final == found.final
    reasons = [event["reason"] for event in server.log_events("query.refused")]
    assert reasons == [
        "the Study Root model has no PATIENT level",
        "Query/Retrieve Level '' is none of PATIENT, STUDY, SERIES, IMAGE",
    ]
    # The association and the server are still fine.
    assert findscu(server.port, ["QueryRetrieveLevel=STUDY", "PatientName"]).final == "Success"
