"""The sheet as people see it: rendered by headless Chromium, printed on one page, hostile
values escaped; and thumbnails that cannot be made give placeholders, not failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.uid import generate_uid

from services.scansheet.thumbnails import ThumbnailPool
from tests.scansheet.conftest import FAST, make_study, send_all, wait_for_sheet
from tests.scansheet.printing import chromium
from tests.support.bombs import big_multiframe
from tests.support.server import StartServer
from tests.support.services import require_tool

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_the_page_renders_and_prints_on_one_page(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(scansheet=FAST)
    study_uid = generate_uid()
    paths = make_study(tmp_path / "in", study_uid, series=4, per_series=2)
    paths += make_study(
        tmp_path / "in",
        study_uid,
        series=1,
        per_series=1,
        first_number=5,
        SeriesDescription=HOSTILE,
    )
    send_all(server, paths)
    sheet = wait_for_sheet(server, series="5")
    page = server.settings.accounts_dir / sheet["study_folder"] / "scansheet.html"
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x" in html

    screenshot = tmp_path / "screenshot.png"
    chromium(page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1240,1754")
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # text, boxes and five thumbnails, not a blank page
    assert (pixels < 128).mean() > 0.02

    pdf = tmp_path / "sheet.pdf"
    chromium(page, tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    info = subprocess.run(
        [require_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    assert "Pages:           1" in info, info

    contact = page.with_name("scansheet.png")
    with Image.open(contact) as image:
        assert image.width >= 4 * FAST.get("thumbnail_size", 192)  # four thumbnails a row
        assert np.asarray(image.convert("L")).std() > 20


async def test_thumbnails_of_hostile_files_are_placeholders_and_a_dead_worker_is_replaced(
    tmp_path: Path,
) -> None:
    [image] = make_study(tmp_path / "in", generate_uid(), series=1, per_series=1)
    not_dicom = tmp_path / "not.dcm"
    not_dicom.write_bytes(b"\x00" * 200 + b"hello")

    bounded = ThumbnailPool(1, 64, 30, max_pixels=1000)  # the 64x64 image is over the bound
    try:
        too_large, garbage, missing = await bounded.make_all([image, not_dicom, None])
    finally:
        bounded.close()
    assert too_large.png is None and "exceeds the limit of 1000" in too_large.note
    assert garbage.png is None and garbage.note
    assert missing.png is None and missing.note == "no instance to picture"

    hasty = ThumbnailPool(1, 64, 0.05, max_pixels=10**6)  # a worker cannot even start so fast
    try:
        late = await hasty.make(image)
    finally:
        hasty.close()
    assert late.png is None and late.note == "took longer than 0.05 s"

    pool = ThumbnailPool(1, 64, 30, max_pixels=10**6)
    try:
        first = await pool.make(image)
        assert first.png is not None and first.png.startswith(b"\x89PNG")
        # A decoder crash kills the worker: the pool is replaced and the image made anyway.
        assert pool._pool is not None
        for process in list(pool._pool._processes.values()):
            process.kill()
            process.join()
        again = await pool.make(image)
        assert again.png is not None
    finally:
        pool.close()


async def test_a_thumbnail_worker_cannot_take_more_memory_than_its_limit(tmp_path: Path) -> None:
    """A 4000 x 4000 frame needs a few hundred MB to be windowed: within a 256 MiB address
    space the worker fails on it and the sheet gets a placeholder; with room, a picture."""
    source = big_multiframe(tmp_path / "large.dcm", frames=1, side=4000)
    tight = ThumbnailPool(1, 64, 60, max_pixels=10**8, memory_limit=256 * 2**20)
    try:
        refused = await tight.make(source)
    finally:
        tight.close()
    assert refused.png is None
    assert "MemoryError" in refused.note or "worker died" in refused.note
    roomy = ThumbnailPool(1, 64, 60, max_pixels=10**8, memory_limit=2 * 2**30)
    try:
        made = await roomy.make(source)
    finally:
        roomy.close()
    assert made.png is not None and made.png.startswith(b"\x89PNG")
