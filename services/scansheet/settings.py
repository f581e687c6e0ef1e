"""The scan-sheet service's settings section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.settings import Section

Paper = Literal["A4", "Letter"]


class ScanSheetSettings(Section):
    """When a study counts as complete, how its scan sheet's thumbnails are made, and the paper
    the sheet is laid out for."""

    stable_age: float = Field(
        default=60.0, gt=0, description="seconds without a new instance before a study completes"
    )
    poll_interval: float = Field(
        default=5.0, ge=0.05, le=300, description="seconds between the monitor's looks"
    )
    reannounce_after: float = Field(
        default=600.0,
        gt=0,
        description="an announced study whose sheet is still not written is announced again",
    )
    prefetch: int = Field(default=4, ge=1, le=100)
    thumbnail_size: int = Field(
        default=320, ge=32, le=1024, description="largest side in pixels: 200 dpi at 40 mm"
    )
    thumbnail_timeout: float = Field(default=20.0, gt=0, description="seconds per image")
    thumbnail_max_pixels: int = Field(default=50_000_000, ge=1, description="per frame")
    thumbnail_workers: int = Field(default=2, ge=1, le=64, description="worker processes")
    thumbnail_memory_mb: int = Field(
        default=1024, ge=256, description="address space of one thumbnail worker, MiB"
    )
    paper: Paper = Field(default="A4", description="the paper the sheet is printed on")
    template: Path | None = Field(
        default=None,
        description="a site's Jinja2 template for the sheet (it may extend ours: "
        '{% extends "scansheet.html.j2" %}); default: ours',
    )
    logo: Path | None = Field(default=None, description="the site's logo (PNG, JPEG, GIF, SVG)")
    site_name: str | None = Field(
        default=None, max_length=200, description="the site's name, beside the logo"
    )
    pdf: bool = Field(default=True, description="write scansheet.pdf beside the HTML page")
    database_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a sheet is retried this long while the database is unreachable, "
        "before it goes back to the bus as a failed attempt",
    )
