"""Write a study's scan sheet: ``scansheet.html``, ``scansheet.pdf`` (unless
``scansheet.pdf`` is false), ``scansheet.png`` and ``scansheet.json``.

The files are written atomically into the study folder, with the router's file mode and
the study folder's owner (the router gave it the account's owner), then the index records the
``last_received_at`` the sheet was made from, so the monitor knows when it is stale again.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scansheet.completion import mark_sheet_written
from services.scansheet.content import SheetContent, read_content
from services.scansheet.render_html import SheetLook, render_html
from services.scansheet.render_pdf import pdf_unavailable
from services.scansheet.render_png import render_png
from services.scansheet.settings import ScanSheetSettings
from services.scansheet.thumbnails import Thumbnail, ThumbnailPool
from shared.db.audit import Action, AuditEvent, record
from shared.files import atomic_write_bytes
from shared.log import get_logger

log = get_logger(__name__)

SHEET_NAMES = ("scansheet.html", "scansheet.pdf", "scansheet.png", "scansheet.json")


class SheetError(Exception):
    """The sheet cannot be written where it belongs (its study folder is gone)."""


@dataclass(frozen=True)
class WrittenSheet:
    folder: Path
    content: SheetContent
    thumbnails: list[Thumbnail]

    written: tuple[str, ...] = SHEET_NAMES

    @property
    def paths(self) -> list[Path]:
        return [self.folder / name for name in self.written]


def sheet_json(content: SheetContent, thumbnails: list[Thumbnail]) -> dict[str, Any]:
    """The sheet's content for machines: the same values the page shows."""
    return {
        "version": 1,
        "study_instance_uid": content.study_instance_uid,
        "study_folder": content.study_folder,
        "generated_at": content.generated_at.isoformat(),
        "last_received_at": (
            content.last_received_at.isoformat() if content.last_received_at else None
        ),
        "patient": content.patient,
        "study": content.study,
        "dose": content.dose,
        "contrast": content.contrast,
        "series": [
            {
                "series_instance_uid": row.series_instance_uid,
                "number": row.number,
                "description": row.description,
                "modality": row.modality,
                "images": row.images,
                "parameters": row.parameters,
                "protocol": row.protocol,
                "plane": row.plane,
                "contrast": row.contrast,
                "dose": row.dose,
                "thumbnail": {"pictured": thumbnail.png is not None, "note": thumbnail.note},
            }
            for row, thumbnail in zip(content.series, thumbnails, strict=True)
        ],
    }


class SheetWriter:
    """Reads a study from the index, pictures its series and writes its sheet."""

    def __init__(
        self,
        settings: ScanSheetSettings,
        accounts_dir: Path,
        engine: AsyncEngine,
        pool: ThumbnailPool,
        file_mode: int,
    ) -> None:
        self._settings = settings
        self._accounts_dir = accounts_dir
        self._engine = engine
        self._pool = pool
        self._file_mode = file_mode  # the router's: the sheet lies beside the filed images
        self._look = SheetLook.of(settings)

    async def write(self, study_uid: str) -> WrittenSheet:
        async with self._engine.connect() as connection:
            content = await read_content(connection, study_uid, self._accounts_dir)
        folder = self._accounts_dir / content.study_folder
        if not folder.is_dir():
            raise SheetError(f"study folder {folder} does not exist")
        thumbnails = await self._pool.make_all([row.source for row in content.series])
        page = render_html(content, thumbnails, self._look)
        files = {"scansheet.html": page}
        if self._settings.pdf and pdf_unavailable() is None:
            pdf = await self._pool.pdf_of(page)
            if pdf is not None:
                files["scansheet.pdf"] = pdf
        files |= {
            "scansheet.png": render_png(content, thumbnails, self._settings.thumbnail_size),
            "scansheet.json": json.dumps(
                sheet_json(content, thumbnails), indent=2, ensure_ascii=False
            ).encode("utf-8"),
        }
        await asyncio.to_thread(self._write_files, folder, files)
        async with self._engine.begin() as connection:
            if content.last_received_at is not None:
                await mark_sheet_written(
                    connection, study_uid, content.last_received_at, datetime.now(UTC)
                )
            await record(
                connection,
                [
                    AuditEvent(
                        Action.SHEET_WRITTEN,
                        "scansheet",
                        study_instance_uid=study_uid,
                        detail={"folder": str(folder), "series": len(content.series)},
                    )
                ],
            )
        log.info(
            "scansheet.written",
            study_instance_uid=study_uid,
            folder=str(folder),
            series=len(content.series),
            pictured=sum(thumbnail.png is not None for thumbnail in thumbnails),
        )
        return WrittenSheet(folder, content, thumbnails, tuple(files))

    def _write_files(self, folder: Path, files: dict[str, bytes]) -> None:
        owner = folder.stat()
        for name, data in files.items():
            path = folder / name
            atomic_write_bytes(path, data, self._file_mode)
            os.chmod(path, self._file_mode)  # the umask narrowed the create
            if os.geteuid() == 0:  # only root can give files away
                os.chown(path, owner.st_uid, owner.st_gid)
