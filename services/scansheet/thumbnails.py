"""Series thumbnails, made in worker processes so that one hostile file cannot hurt the service.

Each thumbnail is the toolkit's (:func:`shared.dicom.convert.dcm_to_thumbnail`: middle frame,
the series' own window (:mod:`shared.dicom.window`: its VOI LUT, else the file's window that
suits its kernel, else one suited to its kernel or modality), a bound on pixels per frame),
made in a process pool with a time limit per image and a cap on each worker's address space.
A file that cannot be pictured gives a placeholder with the reason; one that takes too long
has its worker killed; a pool whose worker died (a crash in a decoder) is replaced.
The pool uses the spawn start method: the service runs threads, and forking a threaded
process can copy a held lock into the child; forkserver would need a Unix socket in the
temporary directory, which the receiver points at the spool, where paths can be too long.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from services.scansheet.render_pdf import render_pdf
from shared.dicom.convert import ConversionError, dcm_to_thumbnail
from shared.log import get_logger

log = get_logger(__name__)

DEFAULT_MEMORY_LIMIT = 2**30  # bytes of address space per worker
PDF_TIMEOUT = 120.0  # seconds to lay a sheet out as PDF


@dataclass(frozen=True)
class Thumbnail:
    """A PNG picture, or None with the reason there is none."""

    png: bytes | None
    note: str = ""


def picture_of(path: str, size: int, max_pixels: int) -> tuple[bytes | None, str]:
    """Run in a worker: the PNG thumbnail of ``path``, or None and the reason.

    Returns the reason rather than raising it, since an exception has to survive pickling
    back to the service and the toolkit's do not.
    """
    with tempfile.TemporaryDirectory(prefix="scansheet-") as directory:
        target = Path(directory) / "thumbnail.png"
        try:
            dcm_to_thumbnail(path, target, size=size, max_pixels=max_pixels)
        except ConversionError as error:
            return None, error.reason
        # The file came from the network: whatever a decoder raises on it is a reason to
        # show a placeholder, never a reason to lose the sheet.
        except Exception as error:
            return None, f"{type(error).__name__}: {str(error)[:200]}"
        return target.read_bytes(), ""


def pdf_or_reason(html: bytes) -> tuple[bytes | None, str]:
    """Run in a worker: the sheet's PDF, or None and the reason (see :func:`picture_of`)."""
    try:
        return render_pdf(html), ""
    except Exception as error:  # returned, not raised: it must survive pickling
        return None, f"{type(error).__name__}: {error}"[:500]


def _start_worker(memory_limit: int) -> None:
    """A worker has no log of its own: what a decoder says of an image reaches the sheet as
    the placeholder's note, and nothing goes to the service's stderr. Its address space is
    capped: whatever a decoder is tricked into allocating fails inside the worker (a
    placeholder, or a dead worker that is replaced), never the host's memory."""
    logging.getLogger().setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))


class ThumbnailPool:
    """A bounded process pool making thumbnails with a time limit per image."""

    def __init__(
        self,
        workers: int,
        size: int,
        timeout: float,
        max_pixels: int,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self._workers = workers
        self._memory_limit = memory_limit
        self._size = size
        self._timeout = timeout
        self._max_pixels = max_pixels
        self._pool: ProcessPoolExecutor | None = None
        # No more images in hand than workers, so the time limit counts work, not queueing.
        self._slots = asyncio.Semaphore(workers)

    def _current(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._memory_limit,),
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Kill a pool's workers and forget it, unless another call replaced it already."""
        if self._pool is not pool:
            return
        self._pool = None
        # The executor's own handle on its workers: there is no public way to stop a task.
        for process in list(pool._processes.values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def make(self, source: Path | None) -> Thumbnail:
        if source is None:
            return Thumbnail(None, "no instance to picture")
        async with self._slots:
            return await self._make(source)

    async def _make(self, source: Path) -> Thumbnail:
        # A pool broken by another image's crash gets one more try on a fresh pool.
        for attempt in (1, 2):
            pool = self._current()
            loop = asyncio.get_running_loop()
            try:
                future = loop.run_in_executor(
                    pool, picture_of, str(source), self._size, self._max_pixels
                )
                png, reason = await asyncio.wait_for(future, self._timeout)
            except TimeoutError:
                log.warning("thumbnail.timeout", path=str(source), seconds=self._timeout)
                self._discard(pool)
                return Thumbnail(None, f"took longer than {self._timeout:g} s")
            except BrokenProcessPool:
                log.warning("thumbnail.worker_died", path=str(source), attempt=attempt)
                self._discard(pool)
                continue
            if png is None:
                log.info("thumbnail.refused", path=str(source), reason=reason)
            return Thumbnail(png, reason)
        return Thumbnail(None, "the thumbnail worker died on this image")

    async def pdf_of(self, html: bytes) -> bytes | None:
        """The sheet's PDF, laid out in a worker: its seconds of layout hold no other
        consumer of this process up (the GIL); None, with the reason logged, when it fails."""
        async with self._slots:
            pool = self._current()
            future = asyncio.get_running_loop().run_in_executor(pool, pdf_or_reason, html)
            try:
                pdf, reason = await asyncio.wait_for(future, PDF_TIMEOUT)
            except TimeoutError:
                self._discard(pool)
                pdf, reason = None, f"took longer than {PDF_TIMEOUT:g} s"
            except BrokenProcessPool:
                self._discard(pool)
                pdf, reason = None, "the worker died"
        if pdf is None:
            log.warning("scansheet.pdf_failed", reason=reason)
        return pdf

    async def make_all(self, sources: list[Path | None]) -> list[Thumbnail]:
        return list(await asyncio.gather(*(self.make(source) for source in sources)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
