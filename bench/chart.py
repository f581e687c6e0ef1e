"""The benchmark's rates as a PNG bar chart, drawn with Pillow (already a dependency).

One group of bars per study and association count; per target, two bars: instances/s as the
sender saw them (its last C-STORE answered) and end to end (the last instance filed and
indexed). Orthanc stores and indexes before it answers, so its two bars are one figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageDraw, ImageFont

COLOURS = {
    "storescp": (150, 150, 150),
    "orthanc": (220, 120, 40),
    "receiver": (60, 110, 190),
    "receiver+consumers": (40, 150, 90),
    "run": (150, 70, 160),
}
BAR, GAP, GROUP_GAP, HEIGHT, MARGIN = 18, 4, 40, 420, 60


class Rated(Protocol):
    study: str
    associations: int
    target: str
    instances_per_second: float | None
    end_to_end_per_second: float | None


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def draw_chart(results: Sequence[Rated], path: Path) -> None:
    groups: dict[str, list[Rated]] = {}
    for result in results:
        groups.setdefault(f"{result.study} x{result.associations}", []).append(result)
    top = max((r.instances_per_second or 0 for r in results), default=1.0) or 1.0
    group_width = max(len(g) for g in groups.values()) * (2 * BAR + 3 * GAP)
    width = 2 * MARGIN + len(groups) * (group_width + GROUP_GAP) + 180
    image = Image.new("RGB", (width, HEIGHT + 2 * MARGIN), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(11)
    base = MARGIN + HEIGHT
    draw.line([(MARGIN, base), (width - 180, base)], fill="black")
    draw.text(
        (MARGIN, 10), "instances/s: received (solid), filed and indexed (light)", "black", font
    )
    x = MARGIN + GROUP_GAP // 2
    for name, members in groups.items():
        start = x
        for result in members:
            colour = COLOURS.get(result.target, (0, 0, 0))
            light = tuple(c + (255 - c) // 2 for c in colour)
            for rate, fill in (
                (result.instances_per_second, colour),
                (result.end_to_end_per_second, light),
            ):
                if rate:
                    bar_top = base - int(HEIGHT * rate / top)
                    draw.rectangle([(x, bar_top), (x + BAR, base)], fill=fill)
                    draw.text((x, bar_top - 14), f"{rate:.0f}", "black", small)
                x += BAR + GAP
            x += GAP
        draw.text((start, base + 8), name, "black", font)
        x = start + group_width + GROUP_GAP
    legend_y = MARGIN
    for target, colour in COLOURS.items():
        if any(r.target == target for r in results):
            draw.rectangle([(width - 170, legend_y), (width - 156, legend_y + 14)], fill=colour)
            draw.text((width - 150, legend_y), target, "black", small)
            legend_y += 22
    image.save(path)
