"""The scan sheet as one self-contained HTML page: inline CSS, thumbnails embedded as data URIs.

Sized for print on the site's paper (``scansheet.paper``, A4 or Letter): a typical study fits
one page of either. A study with more series runs onto further pages, so every printed page
carries the patient's name, patient ID, study date and "page x of y" in its top margin (CSS
paged-media margin boxes): a page that falls out of the pile can still be matched to its
patient. On screen the margins do not exist and the header block at the top says the same.
Every value comes from a modality and is escaped, for HTML in the body and for CSS in the
margin boxes; nothing in the page is fetched from anywhere.
"""

from __future__ import annotations

import base64
import string
from html import escape

from services.scansheet.content import SheetContent
from services.scansheet.settings import Paper
from services.scansheet.thumbnails import Thumbnail
from shared.dicom.parameters import parameters_line

PAPER_SIZES: dict[Paper, str] = {"A4": "A4", "Letter": "letter"}

# Letters, digits and the space cannot end a CSS string, a rule or the style element; every
# other character of a value is written as a hex escape.
_CSS_PLAIN = frozenset(string.ascii_letters + string.digits + " ")

# The top margin holds one line of identification on every printed page, 14 mm deep so that
# the line stays clear of the edge a printer cannot reach.
PAGE_STYLE = """
@page {{
  size: {size};
  margin: 14mm 10mm 10mm 10mm;
  @top-left {{
    content: {identity};
    font: 8pt "DejaVu Sans", Arial, Helvetica, sans-serif; color: #111;
  }}
  @top-right {{
    content: "page " counter(page) " of " counter(pages);
    font: 8pt "DejaVu Sans", Arial, Helvetica, sans-serif; color: #111; white-space: nowrap;
  }}
}}
"""

STYLE = """
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 9pt; color: #111;
       margin: 0 auto; max-width: 190mm; padding: 4mm; background: #fff; }
h1 { font-size: 15pt; margin: 0 0 1mm 0; }
.sub { color: #444; margin-bottom: 3mm; }
.facts { display: flex; gap: 4mm; margin-bottom: 3mm; }
.facts section { flex: 1; border: 0.3mm solid #999; border-radius: 1mm; padding: 2mm; }
.facts h2 { font-size: 10pt; margin: 0 0 1mm 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.4mm 3mm; margin: 0; }
dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; background: #e6e6e6; font-size: 8.5pt; }
th, td { border-bottom: 0.3mm solid #bbb; padding: 1mm 1.5mm; vertical-align: middle; }
tr { break-inside: avoid; page-break-inside: avoid; }
td.num { text-align: right; white-space: nowrap; }
td.series { min-width: 28mm; }
td.params { font-size: 8pt; overflow-wrap: anywhere; }
td.pic { width: 30mm; text-align: center; }
td.pic img { width: 26mm; height: 26mm; object-fit: contain; background: #000; display: block; }
.placeholder { width: 26mm; height: 26mm; border: 0.3mm dashed #888; color: #555;
               font-size: 6.5pt; display: flex; align-items: center; justify-content: center;
               text-align: center; overflow: hidden; padding: 1mm; }
/* On paper the page margin already frames the content: its height goes to series rows. */
@media print { body { padding-top: 0; padding-bottom: 0; } }
footer { margin-top: 3mm; color: #666; font-size: 7pt; overflow-wrap: anywhere; }
"""

PATIENT_LABELS = {
    "name": "Name",
    "id": "Patient ID",
    "birth_date": "Birth date",
    "sex": "Sex",
    "age": "Age",
    "weight": "Weight",
}
STUDY_LABELS = {
    "date": "Date",
    "time": "Time",
    "description": "Description",
    "accession": "Accession",
    "requesting_physician": "Requesting",
    "referring_physician": "Referring",
    "performing_physician": "Performing",
    "institution": "Institution",
    "station": "Station",
    "modality": "Modality",
    "account": "Account",
    "instances": "Instances",
    "series": "Series",
}


def _facts(values: dict[str, str], labels: dict[str, str]) -> str:
    rows = "".join(
        f"<dt>{escape(label)}</dt><dd>{escape(values.get(key, '')) or '&ndash;'}</dd>"
        for key, label in labels.items()
    )
    return f"<dl>{rows}</dl>"


def _picture(thumbnail: Thumbnail, description: str) -> str:
    if thumbnail.png is None:
        return f'<div class="placeholder">no picture: {escape(thumbnail.note)}</div>'
    data = base64.b64encode(thumbnail.png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(description)}">'


def _css_string(text: str) -> str:
    """``text`` as a quoted CSS string that shows exactly ``text``.

    Every escape has all six hex digits, so a digit that follows is never read into it; the
    space after it ends the escape and is not shown.
    """
    return '"' + "".join(c if c in _CSS_PLAIN else f"\\{ord(c):06X} " for c in text) + '"'


def _one_line(text: str) -> str:
    """Control characters and line breaks as single spaces: a margin box holds one line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _identity(content: SheetContent) -> str:
    """What each printed page says about whose it is."""
    name = _one_line(content.patient.get("name", "")) or "unnamed patient"
    patient_id = _one_line(content.patient.get("id", "")) or "\N{EN DASH}"
    study_date = _one_line(content.study.get("date", "")) or "\N{EN DASH}"
    return f"{name} · Patient ID {patient_id} · Study date {study_date}"


def render_html(content: SheetContent, thumbnails: list[Thumbnail], paper: Paper) -> bytes:
    """The page, UTF-8 encoded; ``thumbnails`` are in the order of ``content.series``."""
    rows = []
    for row, thumbnail in zip(content.series, thumbnails, strict=True):
        parameters = parameters_line(row.parameters)
        rows.append(
            "<tr>"
            f'<td class="num">{escape(row.number)}</td>'
            f'<td class="series">{escape(row.description)}</td>'
            f"<td>{escape(row.modality)}</td>"
            f'<td class="num">{row.images}</td>'
            f'<td class="params">{escape(parameters)}</td>'
            f'<td class="pic">{_picture(thumbnail, row.description)}</td>'
            "</tr>"
        )
    patient = content.patient
    study = content.study
    title = f"Scan sheet: {patient.get('name') or patient.get('id') or 'unnamed patient'}"
    when = f"{study.get('date', '')} {study.get('time', '')}".strip()
    subtitle = " · ".join(
        part for part in (study.get("description", ""), when, study.get("modality", "")) if part
    )
    generated = content.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    page_style = PAGE_STYLE.format(
        size=PAPER_SIZES[paper], identity=_css_string(_identity(content))
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{page_style}{STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<div class="sub">{escape(subtitle)}</div>
<div class="facts">
<section><h2>Patient</h2>{_facts(patient, PATIENT_LABELS)}</section>
<section><h2>Study</h2>{_facts(study, STUDY_LABELS)}</section>
</div>
<table>
<thead><tr><th>#</th><th>Series</th><th>Mod.</th><th>Images</th><th>Parameters</th>
<th>Middle image</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody>
</table>
<footer>Study Instance UID {escape(content.study_instance_uid)} &middot; folder
{escape(content.study_folder)} &middot; written {escape(generated)}</footer>
</body></html>
"""
    return page.encode("utf-8")
