"""The scan sheet as one self-contained HTML page, made from a Jinja2 template (autoescaping
on): ours (``templates/scansheet.html.j2``), or a site's (``scansheet.template``), which may
extend ours and replace its blocks, with the site's logo and name (``scansheet.logo``,
``scansheet.site_name``).

Sized for print on the site's paper (``scansheet.paper``, A4 or Letter): a typical study (up to
twelve series) fits one page of either, its series in a grid of cards with thumbnails over
40 mm wide. A study with more series runs onto further pages, so every printed page carries
the patient's name, patient ID, study date and "page x of y" in its top margin (CSS
paged-media margin boxes): a page that falls out of the pile can still be matched to its
patient. On screen the margins do not exist and the header block at the top says the same.
Every value comes from a modality and is escaped, for HTML in the body and for CSS in the
margin boxes; nothing in the page is fetched from anywhere (thumbnails and the logo are data
URIs).
"""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from services.scansheet.content import SeriesRow, SheetContent
from services.scansheet.settings import Paper, ScanSheetSettings
from services.scansheet.thumbnails import Thumbnail
from shared.dicom.parameters import parameters_line
from shared.log import get_logger

log = get_logger(__name__)

DEFAULT_TEMPLATE = "scansheet.html.j2"
TEMPLATES = Path(__file__).with_name("templates")
PAPER_SIZES: dict[Paper, str] = {"A4": "A4", "Letter": "letter"}
LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
MAX_LOGO_BYTES = 2 * 2**20

# Letters, digits and the space cannot end a CSS string, a rule or the style element; every
# other character of a value is written as a hex escape.
_CSS_PLAIN = frozenset(string.ascii_letters + string.digits + " ")

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
    "modality": "Modality",
}
CARE_LABELS = {
    "requesting_physician": "Requesting",
    "referring_physician": "Referring",
    "performing_physician": "Performing",
    "institution": "Institution",
    "station": "Station",
    "account": "Account",
}


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


class TemplateError(ValueError):
    """A site's template that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class SheetLook:
    """How a site's sheets look: the paper, the template, the logo and the site's name."""

    paper: Paper = "A4"
    template: Path | None = None
    logo: Path | None = None
    site_name: str | None = None

    @classmethod
    def of(cls, settings: ScanSheetSettings) -> SheetLook:
        return cls(settings.paper, settings.template, settings.logo, settings.site_name)

    @cached_property
    def environment(self) -> jinja2.Environment:
        folders = [str(self.template.parent)] if self.template else []
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader([*folders, str(TEMPLATES)]),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,
        )

    def check(self) -> None:
        """Raise :class:`TemplateError` when the template or the logo cannot be used (at
        start-up, so that a site learns of it then)."""
        self.logo_uri()
        if self.template is not None:
            # Rendered once for a study of nothing: a missing parent shows only then.
            sample = SheetContent("", "", None, {}, {}, [])
            try:
                template = self.environment.get_template(self.template.name)
                template.render(template_values(sample, [], self))
            except Exception as error:  # a site's template: any failure is the site's
                reason = f"{type(error).__name__}: {error}"
                raise TemplateError(f"scansheet.template: {self.template}: {reason}") from None

    def logo_uri(self) -> str | None:
        if self.logo is None:
            return None
        kind = LOGO_TYPES.get(self.logo.suffix.lower())
        if kind is None:
            raise TemplateError(
                f"scansheet.logo: {self.logo}: not one of {', '.join(sorted(LOGO_TYPES))}"
            )
        try:
            data = self.logo.read_bytes()
        except OSError as error:
            raise TemplateError(f"scansheet.logo: {self.logo}: {error.strerror}") from None
        if len(data) > MAX_LOGO_BYTES:
            raise TemplateError(f"scansheet.logo: {self.logo}: larger than 2 MiB")
        return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _data_uri(thumbnail: Thumbnail) -> str | None:
    if thumbnail.png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(thumbnail.png).decode("ascii")


def _series(row: SeriesRow, thumbnail: Thumbnail) -> dict[str, Any]:
    images = f"{row.images} image{'s' if row.images != 1 else ''}"
    return {
        "number": row.number,
        "description": row.description,
        "summary": " · ".join(part for part in (row.modality, images, row.plane) if part),
        "protocol": row.protocol,
        "dose_and_contrast": " · ".join(
            part
            for part in (
                f"Dose {row.dose}" if row.dose else "",
                f"Contrast {row.contrast}" if row.contrast else "",
            )
            if part
        ),
        "parameters": parameters_line(row.parameters),
        "dose": row.dose,
        "contrast": row.contrast,
        "picture": _data_uri(thumbnail),
        "note": thumbnail.note,
    }


def _rows(values: dict[str, str], labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(label, values.get(key, "")) for key, label in labels.items()]


def _boxes(content: SheetContent) -> list[dict[str, Any]]:
    study = _rows(content.study, STUDY_LABELS)
    series, instances = content.study.get("series", ""), content.study.get("instances", "")
    study.append(("Series", f"{series} ({instances} images)" if instances else series))
    study += [("Dose from" if k == "Source" else k, v) for k, v in content.dose.items()]
    care = _rows(content.study, CARE_LABELS)
    care += [("Contrast" if k == "Agent" else k, v) for k, v in content.contrast.items()]
    return [
        {"key": "patient", "title": "Patient", "rows": _rows(content.patient, PATIENT_LABELS)},
        {"key": "study", "title": "Study", "rows": study},
        {"key": "care", "title": "Physicians, place, contrast", "rows": care},
    ]


def template_values(
    content: SheetContent, thumbnails: list[Thumbnail], look: SheetLook
) -> dict[str, Any]:
    """What a template is given (a site's template may use any of it)."""
    patient, study = content.patient, content.study
    title = f"Scan sheet: {patient.get('name') or patient.get('id') or 'unnamed patient'}"
    when = f"{study.get('date', '')} {study.get('time', '')}".strip()
    subtitle = " · ".join(
        part for part in (study.get("description", ""), when, study.get("modality", "")) if part
    )
    return {
        "title": title,
        "subtitle": subtitle,
        "page_size": PAPER_SIZES[look.paper],
        "identity_css": Markup(_css_string(_identity(content))),
        "identity": _identity(content),
        "logo": look.logo_uri(),
        "site_name": look.site_name or "",
        "patient": patient,
        "study": study,
        "boxes": _boxes(content),
        "dose": content.dose,
        "contrast": content.contrast,
        "series": [_series(r, t) for r, t in zip(content.series, thumbnails, strict=True)],
        "study_instance_uid": content.study_instance_uid,
        "study_folder": content.study_folder,
        "generated": content.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_html(
    content: SheetContent, thumbnails: list[Thumbnail], look: SheetLook | None = None
) -> bytes:
    """The page, UTF-8 encoded; ``thumbnails`` are in the order of ``content.series``. A site
    template that fails on this study is logged, and ours is used for it."""
    look = look or SheetLook()
    values = template_values(content, thumbnails, look)
    if look.template is not None:
        try:
            page = look.environment.get_template(look.template.name).render(values)
            return page.encode("utf-8")
        except Exception as error:  # a site's template: any failure is the site's
            log.error(
                "scansheet.template_failed",
                template=str(look.template),
                error=f"{type(error).__name__}: {error}",
            )
    return look.environment.get_template(DEFAULT_TEMPLATE).render(values).encode("utf-8")
