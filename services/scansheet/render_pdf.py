"""The scan sheet as PDF, for the printer, the RIS or the patient's record: the HTML page laid
out by WeasyPrint (no browser), its fonts embedded. Nothing is fetched: the page's pictures
are data URIs, and any other address a (site's) template names is refused.

WeasyPrint lays text out with the system's Pango (Debian: ``libpango-1.0-0``,
``libpangoft2-1.0-0``). Where it is missing, :func:`pdf_unavailable` says so and sheets are
written without their PDF: the HTML, PNG and JSON do not need it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

PANGO = "libpango-1.0-0 and libpangoft2-1.0-0"


@cache
def _weasyprint() -> Any:
    import weasyprint  # loads Pango: only when a PDF is made

    return weasyprint


@cache
def pdf_unavailable() -> str | None:
    """Why no PDF can be made here, or None when it can."""
    try:
        _weasyprint()
    except OSError as error:  # a shared library not found
        return f"WeasyPrint cannot load Pango ({error}); install {PANGO}"
    return None


def render_pdf(html: bytes) -> bytes:
    """``html`` (a scan sheet page) printed to PDF, on the paper its ``@page`` rule names."""
    weasyprint = _weasyprint()
    from weasyprint.urls import URLFetcher

    own_only = URLFetcher(allowed_protocols=["data"], allow_redirects=False)
    document = weasyprint.HTML(string=html.decode("utf-8"), url_fetcher=own_only)
    pdf: bytes = document.write_pdf()
    return pdf
