"""A typical study (up to twelve series) prints on one page, A4 or Letter, in Chromium and in
the PDF the server writes; a longer one continues, and every printed page says whose it is: a
page that falls out of the pile is matched to its patient by name, patient ID and study date,
and says which page of how many it is, whatever characters the modality put in the name and
ID."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from pydicom.uid import generate_uid

from services.scansheet import Paper
from services.scansheet.content import SeriesRow, SheetContent
from services.scansheet.render_html import SheetLook, render_html
from services.scansheet.render_pdf import render_pdf
from services.scansheet.thumbnails import Thumbnail
from tests.scansheet.conftest import FAST, make_study, send_all, wait_for_sheet
from tests.scansheet.printing import pdf_fonts_embedded, pdf_page_size, pdf_pages, printed_pages
from tests.support.server import StartServer

# What a modality may send: quotes and a backslash to end a CSS string, a tag to end the
# style element, a line break, and a script that DejaVu Sans does not cover.
NAME = 'O\'Brien "Mac" \\ </style><script>alert(1)</script>\n山田, 太郎'
PATIENT_ID = 'P-1"};* { display: none }'
STUDY_DATE = "2026-11-25"


def assert_every_page_names(printed: list[str], name: str, patient_id: str, pages: int) -> None:
    assert len(printed) == pages
    for number, text in enumerate(printed, start=1):
        assert name in text, f"page {number}: {text[:300]}"
        assert f"Patient ID {patient_id}" in text, f"page {number}: {text[:300]}"
        assert f"Study date {STUDY_DATE}" in text, f"page {number}: {text[:300]}"
        assert f"page {number} of {pages}" in text, f"page {number}: {text[:300]}"


def thumbnail() -> Thumbnail:
    png = io.BytesIO()
    Image.linear_gradient("L").resize((192, 192)).save(png, "PNG")
    return Thumbnail(png.getvalue())


def content(series: int, full: str = "") -> SheetContent:
    """A study of ``series`` MR series; ``full``: each with every line its kind of card holds:
    "MR" a protocol and a plane, "CT" dose and contrast too, and the study's."""
    parameters = {
        "TR": "600 ms",
        "TE": "11 ms",
        "TI": "900 ms",
        "Flip": "16°",
        "Thickness": "3 mm",
        "Spacing": "3.5 mm",
        "Pixel spacing": "0.898 \N{MULTIPLICATION SIGN} 0.898 mm",
        "Matrix": "256x256",
        "FOV": "230x230 mm",
        "Sequence": "*tse1",
        "Field": "3 T",
    }
    return SheetContent(
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        study_folder="OBRIEN_MAC_20261125_A1234",
        last_received_at=datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
        patient={"name": NAME, "id": PATIENT_ID, "birth_date": "1980-02-14", "sex": "M"},
        study={"date": STUDY_DATE, "time": "10:15:00", "modality": "MR", "series": str(series)},
        series=[
            SeriesRow(f"1.2.3.{n}", str(n), f"T{n} axial", "MR", 24, parameters, None)
            if not full
            else SeriesRow(
                f"1.2.3.{n}",
                str(n),
                f"T{n} axial post contrast",
                full,
                240,
                parameters,
                None,
                "Chest abdomen pelvis",
                "oblique",
                "Iohexol 350 IV 80 ml" if full == "CT" else "",
                "12.3 mGy" if full == "CT" else "",
            )
            for n in range(1, series + 1)
        ],
        dose={"Total DLP": "1034.5 mGy\N{MIDDLE DOT}cm", "Source": "dose report"}
        if full == "CT"
        else {},
        contrast={"Agent": "Iohexol 350", "Route": "IV", "Volume": "80 ml"} if full == "CT" else {},
    )


@pytest.mark.parametrize("paper", ["A4", "Letter"])
@pytest.mark.parametrize(("series", "pages"), [(1, 1), (6, 1), (12, 1), (13, 2), (30, 3)])
def test_every_printed_page_names_the_patient_and_its_number(
    tmp_path: Path, paper: Paper, series: int, pages: int
) -> None:
    html = render_html(content(series), [thumbnail()] * series, SheetLook(paper))
    assert html.decode("utf-8").count("</style>") == 1 and b"<script" not in html
    page = tmp_path / "scansheet.html"
    page.write_bytes(html)
    pdf = tmp_path / "ours.pdf"
    pdf.write_bytes(render_pdf(html))

    # The line break reads as a space.
    name = " ".join(NAME.split())
    assert_every_page_names(printed_pages(page, tmp_path / "profile"), name, PATIENT_ID, pages)
    assert_every_page_names(pdf_pages(pdf), name, PATIENT_ID, pages)
    width, height = pdf_page_size(pdf)
    assert (round(width), round(height)) == ((595, 842) if paper == "A4" else (612, 792))
    assert pdf_fonts_embedded(pdf)


@pytest.mark.parametrize("paper", ["A4", "Letter"])
@pytest.mark.parametrize(("kind", "series"), [("MR", 12), ("CT", 8)])
def test_a_typical_study_with_every_line_its_cards_hold_prints_on_one_page(
    tmp_path: Path, paper: Paper, kind: str, series: int
) -> None:
    html = render_html(content(series, kind), [thumbnail()] * series, SheetLook(paper))
    page = tmp_path / "scansheet.html"
    page.write_bytes(html)
    pdf = tmp_path / "ours.pdf"
    pdf.write_bytes(render_pdf(html))
    name = " ".join(NAME.split())
    assert_every_page_names(printed_pages(page, tmp_path / "profile"), name, PATIENT_ID, 1)
    [printed] = pdf_pages(pdf)
    assert_every_page_names([printed], name, PATIENT_ID, 1)
    assert printed.count("pelvis") == series  # every card, whole
    if kind == "CT":
        assert "Total DLP 1034.5 mGy·cm" in printed and "Dose 12.3 mGy" in printed


def test_a_thirteen_series_study_on_letter_names_its_patient_on_both_pages(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(scansheet={**FAST, "paper": "Letter"})
    patient_id = "P-7</style><script>"
    paths = make_study(
        tmp_path / "in",
        generate_uid(),
        series=13,
        per_series=1,
        SpecificCharacterSet="ISO_IR 192",
        PatientName="山田^太郎",
        PatientID=patient_id,
    )
    send_all(server, paths)
    sheet = wait_for_sheet(server, series="13")
    folder = server.settings.accounts_dir / sheet["study_folder"]

    printed = printed_pages(folder / "scansheet.html", tmp_path / "profile")

    assert_every_page_names(printed, "山田, 太郎", patient_id, 2)
    assert_every_page_names(pdf_pages(folder / "scansheet.pdf"), "山田, 太郎", patient_id, 2)
    assert pdf_fonts_embedded(folder / "scansheet.pdf")
