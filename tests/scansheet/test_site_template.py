"""A site makes the sheet its own: its template (extending ours or replacing it whole), its
logo and its name; what a site's template does wrong is told at start-up or costs only its
own look, and nothing a template names is fetched."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from structlog.testing import capture_logs

from services.scansheet.render_html import SheetLook, render_html
from services.scansheet.render_pdf import render_pdf
from shared.process import StartError
from tests.scansheet.printing import pdf_pages
from tests.scansheet.test_print import NAME, content, thumbnail
from tests.support.server import StartServer


def logo(path: Path) -> Path:
    picture = io.BytesIO()
    Image.new("RGB", (120, 40), (200, 30, 30)).save(picture, "PNG")
    path.write_bytes(picture.getvalue())
    return path


def site_template(folder: Path, text: str, name: str = "site.html.j2") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


EXTENDING = """{% extends "scansheet.html.j2" %}
{% block comments %}<td class="comments"><h2>Nurse's checklist</h2>
<p>IV access removed &#x2610;</p><p>Contrast reaction &#x2610;</p></td>{% endblock %}
{% block footer %}<footer>Radiology department, ext. 4242 · {{ study_instance_uid }}</footer>
{% endblock %}
"""


def test_a_site_template_extends_ours_with_its_logo_and_name(tmp_path: Path) -> None:
    look = SheetLook(
        "Letter",
        site_template(tmp_path, EXTENDING),
        logo(tmp_path / "logo.png"),
        "St. Elsewhere <Radiology> & Imaging",
    )
    look.check()
    html = render_html(content(3), [thumbnail()] * 3, look).decode("utf-8")
    assert "Nurse's checklist" in html and "Technologist's comments" not in html
    assert "Radiology department, ext. 4242 · 1.2.826.0.1.3680043.8.498.1" in html
    assert "St. Elsewhere &lt;Radiology&gt; &amp; Imaging" in html  # escaped
    assert "data:image/png;base64," + base64.b64encode(look.logo.read_bytes()).decode() in html  # type: ignore[union-attr]
    assert "<script>" not in html and html.count("<article>") == 3  # ours, escaped as ever
    printed = pdf_pages(write(tmp_path, render_pdf(html.encode())))
    assert len(printed) == 1 and "Nurse's checklist" in printed[0]
    assert "St. Elsewhere <Radiology> & Imaging" in printed[0]


def write(folder: Path, pdf: bytes) -> Path:
    path = folder / "sheet.pdf"
    path.write_bytes(pdf)
    return path


def test_a_whole_site_template_is_escaped_too(tmp_path: Path) -> None:
    own = site_template(
        tmp_path,
        "<html><body><h1>{{ patient.name }}</h1>{% for row in series %}"
        "<p>{{ row.description }}: {{ row.parameters }}</p>{% endfor %}</body></html>",
    )
    html = render_html(content(2), [thumbnail()] * 2, SheetLook("A4", own)).decode("utf-8")
    assert "<script>" not in html and "&lt;/style&gt;&lt;script&gt;" in html
    assert html.count("<p>T") == 2 and "TR 600 ms" in html
    assert NAME.split("\n")[1] in html  # 山田, 太郎 as it is


def test_a_template_that_fails_on_a_study_costs_only_its_look(tmp_path: Path) -> None:
    # Fine for a study of nothing (start-up's check), failing for one with series.
    failing = site_template(
        tmp_path, "{% for row in series %}{{ row.description.nothing() }}{% endfor %}"
    )
    look = SheetLook("A4", failing)
    look.check()
    with capture_logs() as logs:
        html = render_html(content(1), [thumbnail()], look).decode("utf-8")
    assert "Technologist's comments" in html  # ours, for this study
    [failed] = [entry for entry in logs if entry["event"] == "scansheet.template_failed"]
    assert "has no attribute 'nothing'" in failed["error"]


@pytest.mark.parametrize(
    ("template", "logo_name", "reason"),
    [
        ("{% block broken %}", None, "scansheet.template: "),
        ("{% extends 'nowhere.html.j2' %}", None, "nowhere.html.j2"),
        (None, "logo.bmp", "scansheet.logo: "),
        (None, "missing.png", "No such file"),
    ],
)
def test_a_template_or_logo_that_cannot_be_used_stops_start_up_naming_it(
    start_server: StartServer,
    tmp_path: Path,
    template: str | None,
    logo_name: str | None,
    reason: str,
) -> None:
    scansheet: dict[str, object] = {}
    if template is not None:
        scansheet["template"] = site_template(tmp_path, template)
    if logo_name is not None:
        path = tmp_path / logo_name
        if logo_name != "missing.png":
            path.write_bytes(b"BM")
        scansheet["logo"] = path
    with pytest.raises(StartError, match=reason):
        start_server(scansheet=scansheet)


def test_nothing_a_template_names_is_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    logo(secret)
    own = site_template(
        tmp_path,
        f'<html><body><img src="{secret.as_uri()}"><img src="http://192.0.2.1/x.png">'
        '<link rel="stylesheet" href="http://192.0.2.1/x.css"><p>page</p></body></html>',
    )
    html = render_html(content(1), [thumbnail()], SheetLook("A4", own))
    pdf = render_pdf(html)  # at once: the unroutable address is not even tried
    assert pdf.startswith(b"%PDF") and b"/Image" not in pdf


def test_without_pango_the_reason_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.scansheet import render_pdf as module

    def missing() -> None:
        raise OSError("cannot load library 'libpango-1.0-0': No such file")

    monkeypatch.setattr(module, "_weasyprint", missing)
    module.pdf_unavailable.cache_clear()
    try:
        why = module.pdf_unavailable()
    finally:
        module.pdf_unavailable.cache_clear()
    assert why is not None and "install libpango-1.0-0 and libpangoft2-1.0-0" in why
