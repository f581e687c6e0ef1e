"""What the sheet says of a study's dose, contrast, planes and protocols, and of each series'
acquisition parameters by modality: read by ``read_content`` from a real server's index after
a study was sent to it, from pydicom's own files' headers and from headers made to order."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, generate_uid

from services.scansheet.content import (
    SheetContent,
    acquisition_plane,
    contrast_agent,
    read_content,
)
from shared.dicom.header import read_header
from shared.dicom.parameters import series_parameters
from tests.conftest import Backend
from tests.router.conftest import make_instance
from tests.scansheet.conftest import FAST, send_all, wait_for_sheet
from tests.support.server import ServerUnderTest, StartServer
from tests.toolkit.test_dose import ct_dose_report, deeply_nested, pydicom_file, save

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
CORONAL = [1, 0, 0, 0, 0, -1]
# Row along x, column turned 45 degrees from y toward -z: the normal is as near y as z.
OBLIQUE = [1, 0, 0, 0, math.cos(math.pi / 4), -math.sin(math.pi / 4)]
# An axial tilted 20 degrees (a gantry tilt) is still called axial.
TILTED = [1, 0, 0, 0, math.cos(math.pi / 9), -math.sin(math.pi / 9)]
MIDDLE_DOT, EN_DASH = "\N{MIDDLE DOT}", "\N{EN DASH}"


def header_of(name: str) -> Dataset:
    """The header of one of pydicom's test files (pydicom's own, or pydicom-data's)."""
    return read_header(pydicom_file(name))


def content_of(server: ServerUnderTest, study_uid: str) -> SheetContent:
    """``read_content`` against the server's own index, on the server's loop."""

    async def read() -> SheetContent:
        assert server.running is not None
        async with server.running.index.connect() as connection:
            return await read_content(connection, study_uid, server.settings.accounts_dir)

    return server.call(read())


def oriented(orientation: Iterable[float]) -> Dataset:
    header = Dataset()
    header.ImageOrientationPatient = [round(value, 6) for value in orientation]
    return header


def ct_series(
    folder: Path, study_uid: str, number: int, ctdi: list[float], **tags: Any
) -> list[Path]:
    series_uid = generate_uid()
    return [
        make_instance(
            folder,
            study_uid=study_uid,
            series_uid=series_uid,
            tags={
                "SOPClassUID": str(CTImageStorage),
                "Modality": "CT",
                "SeriesNumber": number,
                "InstanceNumber": position,
                "KVP": 120,
                "Exposure": 250,
                "CTDIvol": value,
                **tags,
            },
        )
        for position, value in enumerate(ctdi, start=1)
    ]


def dose_report_file(folder: Path, study_uid: str) -> Path:
    """The CT's dose report as its own series, with the study's patient and study values
    (those ``make_instance`` gives)."""
    report = ct_dose_report(study_uid)
    study = {
        "PatientName": "DOE^JANE",
        "PatientID": "P0001",
        "StudyDate": "20261125",
        "StudyTime": "101500",
        "AccessionNumber": "A1234",
        "StudyID": "1",
        "SeriesInstanceUID": generate_uid(),
        "SeriesNumber": 5,
        "SeriesDescription": "Dose Report",
        "InstanceNumber": 1,
    }
    for keyword, value in study.items():
        setattr(report, keyword, value)
    return save(report, folder / "dose-report.dcm")


def test_plane_from_image_orientation() -> None:
    assert acquisition_plane(oriented(AXIAL)) == "axial"
    assert acquisition_plane(oriented(SAGITTAL)) == "sagittal"
    assert acquisition_plane(oriented(CORONAL)) == "coronal"
    assert acquisition_plane(oriented(OBLIQUE)) == "oblique"
    assert acquisition_plane(oriented(TILTED)) == "axial"
    assert acquisition_plane(header_of("CT_small.dcm")) == "axial"
    assert acquisition_plane(header_of("MR_small.dcm")) == "axial"
    assert acquisition_plane(Dataset()) == ""
    assert acquisition_plane(oriented([1, 0, 0, 1, 0, 0])) == ""  # parallel: no plane
    assert acquisition_plane(oriented([0, 0, 0, 0, 0, 0])) == ""
    assert acquisition_plane(oriented([1, 0, 0])) == ""
    enhanced = Dataset()
    plane = Dataset()
    plane.PlaneOrientationSequence = Sequence([oriented(SAGITTAL)])
    enhanced.SharedFunctionalGroupsSequence = Sequence([plane])
    assert acquisition_plane(enhanced) == "sagittal"


def test_contrast_from_real_and_made_headers() -> None:
    assert contrast_agent(header_of("CT_small.dcm")) == {"Agent": "ISOVUE300/100", "Route": "IV"}
    # A Siemens MR writes its agent with a volume of 0: a default, not shown as a dose.
    assert contrast_agent(header_of("MR-SIEMENS-DICOM-WithOverlays.dcm")) == {
        "Agent": "11 ml Omniscan"
    }
    assert contrast_agent(header_of("MR_small.dcm")) == {}  # an empty agent
    none = Dataset()
    none.ContrastBolusAgent = "NONE"
    none.ContrastBolusVolume = 50
    assert contrast_agent(none) == {}
    coded, route = Dataset(), Dataset()
    coded.CodeMeaning, route.CodeMeaning = "Iohexol", "Intravenous route"
    coded.ContrastBolusAdministrationRouteSequence = Sequence([route])
    coded.ContrastBolusVolume = 75.5
    enhanced = Dataset()
    enhanced.ContrastBolusAgentSequence = Sequence([coded])
    assert contrast_agent(enhanced) == {
        "Agent": "Iohexol",
        "Route": "Intravenous route",
        "Volume": "75.5 ml",
    }


def test_parameters_of_real_ct_cr_and_us_headers() -> None:
    ct = series_parameters({"modality": "CT", "slice_thickness": 5.0}, header_of("CT_small.dcm"))
    assert list(ct.items()) == [
        ("kVp", "120"),
        ("mAs", "170"),
        ("Thickness", "5 mm"),
        ("Pixel spacing", "0.661 \N{MULTIPLICATION SIGN} 0.661 mm"),
        ("Kernel", "STANDARD"),
    ]
    assert series_parameters({"modality": "CR"}, header_of("RG1_UNCI.dcm")) == {
        "kVp": "150",
        "mAs": "2",
        "View": "PA",
        "Detector": "Sel Drum 500x500",
    }
    # The frequency is in the first ultrasound region, in kHz; the transducer is unnamed.
    assert series_parameters({"modality": "US"}, header_of("gdcm-US-ALOKA-16.dcm")) == {
        "Frequency": "5 MHz"
    }
    # A nuclear medicine image that writes none of them shows none (no guessed values).
    assert series_parameters({"modality": "NM"}, header_of("JPEG-LL.dcm")) == {}


def test_parameters_of_pet_nm_us_dx_and_mg_made_headers() -> None:
    drug = Dataset()
    drug.Radiopharmaceutical = "Fluorodeoxyglucose"
    drug.RadionuclideTotalDose = 3.7e8  # Bq
    drug.RadionuclideHalfLife = 6586.2  # s
    pet = Dataset()
    pet.RadiopharmaceuticalInformationSequence = Sequence([drug])
    pet.DecayCorrection = "START"
    pet.ReconstructionMethod = "OSEM 3i21s"
    assert list(series_parameters({"modality": "PT"}, pet).items()) == [
        ("Radiopharmaceutical", "Fluorodeoxyglucose"),
        ("Injected", "370 MBq"),
        ("Half life", "109.8 min"),
        ("Decay correction", "to start"),
        ("Reconstruction", "OSEM 3i21s"),
    ]

    nuclide, technetium = Dataset(), Dataset()
    nuclide.CodeMeaning = "^99m^Technetium"
    technetium.RadionuclideCodeSequence = Sequence([nuclide])
    technetium.RadionuclideTotalDose = 7.4e8
    limits, window, detector = Dataset(), Dataset(), Dataset()
    limits.EnergyWindowLowerLimit, limits.EnergyWindowUpperLimit = 126, 154
    window.EnergyWindowRangeSequence = Sequence([limits])
    window.EnergyWindowName = "TC99M"
    detector.CollimatorGridName = "LEHR"
    nm = Dataset()
    nm.RadiopharmaceuticalInformationSequence = Sequence([technetium])
    nm.EnergyWindowInformationSequence = Sequence([window])
    nm.DetectorInformationSequence = Sequence([detector])
    assert series_parameters({"modality": "NM"}, nm) == {
        "Radiopharmaceutical": "^99m^Technetium",
        "Injected": "740 MBq",
        "Energy window": f"TC99M 126{EN_DASH}154 keV",
        "Collimator": "LEHR",
    }

    region = Dataset()
    region.TransducerFrequency = 7500  # kHz
    region.TransducerType = "LINEAR"
    us = Dataset()
    us.SequenceOfUltrasoundRegions = Sequence([region])
    us.MechanicalIndex, us.SoftTissueThermalIndex = "1.20", "0.4"
    assert series_parameters({"modality": "US"}, us) == {
        "Transducer": "LINEAR",
        "Frequency": "7.5 MHz",
        "MI": "1.2",
        "TIS": "0.4",
    }

    dx = Dataset()
    dx.KVP, dx.ExposureInuAs, dx.ExposureIndex, dx.DeviationIndex = 70, 2500, 412, -0.3
    dx.ViewPosition, dx.DetectorType = "AP", "SCINTILLATOR"
    assert series_parameters({"modality": "DX"}, dx) == {
        "kVp": "70",
        "mAs": "2.5",
        "EI": "412",
        "DI": "-0.3",
        "View": "AP",
        "Detector": "SCINTILLATOR",
    }

    mg = Dataset()
    mg.KVP, mg.Exposure, mg.CompressionForce, mg.BodyPartThickness = 28, 63, 120, 52
    mg.AnodeTargetMaterial, mg.FilterMaterial = "MOLYBDENUM", "RHODIUM"
    mg.ViewPosition, mg.ImageLaterality = "MLO", "L"
    assert list(series_parameters({"modality": "MG"}, mg).items()) == [
        ("kVp", "28"),
        ("mAs", "63"),
        ("Compression", "120 N"),
        ("Thickness", "52 mm"),
        ("Anode/filter", "Mo/Rh"),
        ("View", "L MLO"),
    ]
    assert series_parameters({"modality": "MG"}, Dataset()) == {}


def test_read_content_gives_the_dose_report_the_contrast_planes_and_protocols(
    start_server: StartServer, backend: Backend, tmp_path: Path
) -> None:
    server = start_server(backend, scansheet=FAST)
    study_uid = generate_uid()
    folder = tmp_path / "in"
    contrast = {
        "ContrastBolusAgent": "Omnipaque 350",
        "ContrastBolusRoute": "IV",
        "ContrastBolusVolume": 80,
        "ContrastBolusStartTime": "101200",
    }
    paths = ct_series(
        folder,
        study_uid,
        1,
        [11.0, 12.3, 14.0],  # the middle image's is the series'
        SeriesDescription="Abdomen venous",
        ProtocolName="CT ABDOMEN",
        ImageOrientationPatient=AXIAL,
        **contrast,
    )
    paths += ct_series(folder, study_uid, 2, [8.2], ImageOrientationPatient=SAGITTAL)
    for number, orientation in ((3, CORONAL), (4, OBLIQUE)):
        paths.append(
            make_instance(
                folder,
                study_uid=study_uid,
                SeriesNumber=number,
                ProtocolName=f"t2_tse_{number}",
                ImageOrientationPatient=[round(value, 6) for value in orientation],
            )
        )
    paths.append(dose_report_file(folder, study_uid))
    send_all(server, paths)
    wait_for_sheet(server, series="5")

    content = content_of(server, study_uid)
    rows = {row.number: row for row in content.series}
    assert [row.number for row in content.series] == ["1", "2", "3", "4", "5"]
    assert (rows["1"].plane, rows["1"].protocol, rows["1"].dose) == (
        "axial",
        "CT ABDOMEN",
        "12.3 mGy",
    )
    assert rows["1"].contrast == "Omnipaque 350, IV, 80 ml"
    assert (rows["2"].plane, rows["2"].contrast, rows["2"].dose) == ("sagittal", "", "8.2 mGy")
    assert (rows["3"].plane, rows["3"].protocol, rows["3"].dose) == ("coronal", "t2_tse_3", "")
    assert rows["4"].plane == "oblique"
    report_row = rows["5"]  # the dose report is a series of the sheet like any other
    assert (report_row.modality, report_row.plane, report_row.dose) == ("SR", "", "")
    assert content.dose == {
        "Total DLP": f"456.7 mGy{MIDDLE_DOT}cm",
        "CTDIvol": f"8.2{EN_DASH}12.3 mGy",
        "Source": "dose report",
    }
    assert content.contrast == {
        "Agent": "Omnipaque 350",
        "Route": "IV",
        "Volume": "80 ml",
        "Start time": "10:12:00",
    }

    # A dose report that cannot be read (nested beyond what pydicom reads, then no DICOM at
    # all) gives no dose from it, a warning, and the images' CTDIvol: the sheet is still made.
    assert report_row.source is not None and report_row.source.is_file()
    from_images = {"CTDIvol": f"8.2{EN_DASH}12.3 mGy", "Source": "image headers"}
    deeply_nested(report_row.source, 10_000)
    assert content_of(server, study_uid).dose == from_images
    report_row.source.write_bytes(b"not a dose report")
    again = content_of(server, study_uid)
    assert again.dose == from_images and len(again.series) == 5
    warnings = server.log_events("scansheet.dose_report_unread")
    assert len(warnings) >= 2 and all(w["level"] == "warning" for w in warnings)
    assert "nested too deep" in warnings[0]["reason"]
    assert "not a DICOM file" in warnings[-1]["reason"]


def test_read_content_of_a_study_of_real_headers(start_server: StartServer, tmp_path: Path) -> None:
    """pydicom's own files, made one study: a CT with contrast and no CTDIvol, a Siemens CT
    with its CTDIvol, a Siemens MR with its protocol, a CR and an ultrasound."""
    server = start_server(scansheet=FAST)
    study_uid = generate_uid()
    names = [
        "CT_small.dcm",
        "bad_sequence.dcm",
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
        "RG1_UNCI.dcm",
        "gdcm-US-ALOKA-16.dcm",
    ]
    paths = []
    for number, name in enumerate(names, start=1):
        dataset = pydicom.dcmread(pydicom_file(name))
        dataset.StudyInstanceUID, dataset.SeriesNumber = study_uid, number
        dataset.PatientName, dataset.PatientID = "DOE^JANE", "P0001"
        paths.append(tmp_path / "in" / name)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(paths[-1])
    send_all(server, paths)
    wait_for_sheet(server, series="5")

    content = content_of(server, study_uid)
    rows = {row.number: row for row in content.series}
    assert (rows["1"].modality, rows["1"].plane, rows["1"].dose) == ("CT", "axial", "")
    assert rows["1"].contrast == "ISOVUE300/100, IV"
    assert (rows["2"].dose, rows["2"].parameters["Kernel"]) == ("29.8 mGy", "B30s")
    assert (rows["3"].protocol, rows["3"].contrast) == ("t1_vibe_fs_tra_bh_dyn", "11 ml Omniscan")
    assert rows["4"].parameters == {
        "kVp": "150",
        "mAs": "2",
        "View": "PA",
        "Detector": "Sel Drum 500x500",
    }
    assert (rows["4"].plane, rows["4"].dose) == ("", "")
    assert rows["5"].parameters == {"Frequency": "5 MHz"}
    assert content.dose == {"CTDIvol": "29.8 mGy", "Source": "image headers"}
    assert content.contrast == {"Agent": "ISOVUE300/100", "Route": "IV"}  # the first series'
