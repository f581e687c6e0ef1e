"""The sheet on paper: printed by headless Chromium, read back page by page with poppler."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.services import require_tool

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(page: Path, profile: Path, *output: str) -> None:
    command = [require_tool("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *output]
    done = subprocess.run(
        [*command, page.as_uri()], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def printed_pages(page: Path, profile: Path) -> list[str]:
    """The text of each page Chromium prints ``page`` on, without the browser's own header
    and footer; runs of white space are one space, as a reader sees them."""
    pdf = page.with_name(page.stem + ".chromium.pdf")
    chromium(page, profile, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    return pdf_pages(pdf)


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of ``pdf``, as poppler reads it (runs of white space as one)."""
    text = subprocess.run(
        [require_tool("pdftotext"), "-layout", "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pdftotext ends every page with a form feed.
    return [" ".join(one.split()) for one in text.split("\f")[:-1]]


def _pdfinfo(pdf: Path) -> str:
    done = subprocess.run(
        [require_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True
    )
    return done.stdout


def pdf_page_size(pdf: Path) -> tuple[float, float]:
    """The first page's width and height in points, as poppler reads them."""
    line = next(line for line in _pdfinfo(pdf).splitlines() if line.startswith("Page size:"))
    width, _, height = line.split(":", 1)[1].split()[:3]
    return float(width), float(height)


def pdf_fonts_embedded(pdf: Path) -> bool:
    """Whether ``pdf`` uses fonts and embeds every one of them (poppler's pdffonts)."""
    done = subprocess.run(
        [require_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True
    )
    rows = done.stdout.splitlines()[2:]
    # Columns: name type encoding emb sub uni object ID; "emb" is fourth from the end.
    return bool(rows) and all(row.split()[-5] == "yes" for row in rows)
