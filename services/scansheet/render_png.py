"""The scan sheet as a labelled contact sheet: one thumbnail per series, in a grid.

Labels use DejaVu Sans when installed (Debian's ``fonts-dejavu-core``), which covers the
Latin, Greek and Cyrillic names modalities send; otherwise Pillow's own font. Labels longer
than their cell are cut with an ellipsis.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

from services.scansheet.content import SheetContent
from services.scansheet.thumbnails import Thumbnail

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
COLUMNS = 4
PAD = 8
LINE = 16
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


def _font(size: int, bold: bool = False) -> Font:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    text = " ".join(text.split())  # control characters and newlines from tag values
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _placeholder(size: int, note: str, font: Font) -> Image.Image:
    tile = Image.new("RGB", (size, size), (225, 225, 225))
    draw = ImageDraw.Draw(tile)
    lines = textwrap.wrap(f"no picture: {note}", width=max(8, size // 8))[: size // LINE - 1]
    for number, line in enumerate(lines):
        draw.text((6, 6 + number * LINE), _fit(draw, line, font, size - 12), fill=MUTED, font=font)
    return tile


def render_png(content: SheetContent, thumbnails: list[Thumbnail], size: int) -> bytes:
    """The contact sheet as PNG bytes; ``thumbnails`` are in the order of ``content.series``."""
    regular, small, bold = _font(13), _font(11), _font(16, bold=True)
    count = max(1, len(content.series))
    columns = min(COLUMNS, count)
    rows = (count + columns - 1) // columns
    cell_width, cell_height = size + PAD * 2, size + PAD * 2 + LINE * 2
    header = PAD * 2 + LINE * 3
    width = max(columns * cell_width, 480)
    sheet = Image.new("RGB", (width, header + rows * cell_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    patient, study = content.patient, content.study
    lines = [
        (f"{patient.get('name') or 'unnamed patient'}  ({patient.get('id', '')})", bold, INK),
        (
            f"{study.get('date', '')} {study.get('time', '')}  {study.get('description', '')}"
            f"  Acc. {study.get('accession', '')}",
            regular,
            INK,
        ),
        (
            f"{study.get('modality', '')} · {study.get('series', '')} series · "
            f"{study.get('instances', '')} images · {study.get('institution', '')}",
            small,
            MUTED,
        ),
    ]
    for number, (text, font, colour) in enumerate(lines):
        y = PAD + number * (LINE + 2)
        draw.text((PAD, y), _fit(draw, text, font, width - PAD * 2), fill=colour, font=font)

    for index, (row, thumbnail) in enumerate(zip(content.series, thumbnails, strict=True)):
        left = (index % columns) * cell_width + PAD
        top = header + (index // columns) * cell_height + PAD
        if thumbnail.png is not None:
            with Image.open(io.BytesIO(thumbnail.png)) as opened:
                picture = opened.convert("RGB")
            # Small images are enlarged to the cell, so that every series reads alike.
            scale = min(size / picture.width, size / picture.height)
            shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            picture = picture.resize(shape, Image.Resampling.LANCZOS)
            frame = Image.new("RGB", (size, size), (0, 0, 0))
            frame.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
        else:
            frame = _placeholder(size, thumbnail.note, small)
        sheet.paste(frame, (left, top))
        label = f"{row.number}  {row.description}".strip()
        detail = f"{row.modality} · {row.images} image{'' if row.images == 1 else 's'}"
        draw.text((left, top + size + 2), _fit(draw, label, regular, size), fill=INK, font=regular)
        draw.text(
            (left, top + size + 2 + LINE), _fit(draw, detail, small, size), fill=MUTED, font=small
        )
    output = io.BytesIO()
    sheet.save(output, format="PNG", optimize=True)
    return output.getvalue()
