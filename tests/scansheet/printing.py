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
    pdf = page.with_suffix(".pdf")
    chromium(page, profile, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    text = subprocess.run(
        [require_tool("pdftotext"), "-layout", "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pdftotext ends every page with a form feed.
    return [" ".join(one.split()) for one in text.split("\f")[:-1]]
