"""Make docs/pictures/scansheet.png, the README's picture of the default scan sheet: real
images from pydicom's test files, laid out as a twelve-series study, printed to PDF by the
server's own code and its first page rendered by poppler. Run from the repository:
``.venv/bin/python docs/pictures/make_sheet.py``."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from services.scansheet.content import SeriesRow, SheetContent
from services.scansheet.render_html import SheetLook, render_html
from services.scansheet.render_pdf import render_pdf
from services.scansheet.thumbnails import Thumbnail
from shared.dicom.convert import dcm_to_thumbnail
from shared.dicom.parameters import series_parameters

HERE = Path(__file__).parent
# (file, series description, protocol, plane, dose, contrast)
SERIES = [
    ("693_UNCI.dcm", "Head plain 5 mm", "Head routine", "axial", "48.2 mGy", ""),
    ("CT_small.dcm", "Head bone", "Head routine", "axial", "48.2 mGy", ""),
    ("eCT_Supplemental.dcm", "Angio arterial", "CTA neck", "axial", "9.8 mGy", "Iohexol"),
    ("MR_small.dcm", "T1 SE axial", "Brain", "axial", "", ""),
    ("emri_small.dcm", "T2 TSE", "Brain", "axial", "", ""),
    ("MR2_UNCR.dcm", "FLAIR", "Brain", "sagittal", "", ""),
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", "MPR lesion", "Brain", "coronal", "", ""),
    ("JPEG2000.dcm", "Bone scan", "Whole body", "", "", ""),
    ("CT_small.dcm", "Head soft", "Head routine", "axial", "48.2 mGy", ""),
    ("MR_small.dcm", "T1 post contrast", "Brain", "axial", "", "Gadobutrol"),
    ("emri_small.dcm", "DWI", "Brain", "axial", "", ""),
    ("693_UNCI.dcm", "Head plain 2 mm", "Head routine", "axial", "48.2 mGy", ""),
]


def main() -> None:
    rows, thumbnails = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number, (name, description, protocol, plane, dose, contrast) in enumerate(
            SERIES, start=1
        ):
            source = Path(get_testdata_file(name) or "")
            header = pydicom.dcmread(source, stop_before_pixels=True)
            target = Path(scratch) / f"{number}.png"
            dcm_to_thumbnail(source, target, size=320)
            row = {"modality": header.get("Modality", ""), "description": description}
            rows.append(
                SeriesRow(
                    f"1.2.3.{number}", str(number), description, str(header.Modality),
                    int(header.get("NumberOfFrames") or 1) * 24,
                    series_parameters(row, header), source, protocol, plane, contrast, dose,
                )  # fmt: skip
            )
            thumbnails.append(Thumbnail(target.read_bytes()))
    content = SheetContent(
        study_instance_uid="1.2.826.0.1.3680043.8.498.20261126",
        study_folder="DOE_JANE_20261126_A0042",
        last_received_at=None,
        patient={"name": "Doe, Jane", "id": "P-0042", "birth_date": "1961-04-02",
                 "sex": "F", "age": "065Y", "weight": "64 kg"},
        study={"date": "2026-11-26", "time": "09:41:00", "description": "Head CT and MR",
               "accession": "A0042", "modality": "CT, MR, NM", "series": "12",
               "instances": "312", "requesting_physician": "House, Gregory",
               "referring_physician": "Cuddy, Lisa", "performing_physician": "Chase, Robert",
               "institution": "St. Elsewhere", "station": "CT1", "account": "House"},
        series=rows,
        dose={"Total DLP": "1034.5 mGy·cm", "Source": "dose report"},
        contrast={"Agent": "Iohexol 350", "Route": "IV", "Volume": "80 ml"},
    )  # fmt: skip
    html = render_html(content, thumbnails, SheetLook("A4"))
    with tempfile.TemporaryDirectory() as scratch:
        pdf = Path(scratch) / "scansheet.pdf"
        pdf.write_bytes(render_pdf(html))
        subprocess.run(
            ["pdftoppm", "-png", "-r", "80", "-singlefile", str(pdf), str(HERE / "scansheet")],
            check=True,
        )


if __name__ == "__main__":
    main()
