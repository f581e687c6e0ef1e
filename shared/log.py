"""Structured logging: JSON lines to the log file, and to stdout (readable on a terminal).

Every event is one JSON object per line in ``<data_dir>/logs/store-server.log``; stdout gets
the same events, rendered for people when stdout is a terminal and as JSON otherwise (so a
container's log collector gets JSON). Log calls name the instance with ``sop_instance_uid``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def configure_logging(
    log_file: Path | None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library (pynetdicom, aio-pika) to file and stdout.

    ``stream`` replaces stdout: the one-shot commands log to stderr so that their output
    (``--json`` for scripts) stays clean.
    """
    stream = stream or sys.stdout
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    json_formatter = _OncePerRecord(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    # Not a terminal: stdout gets the file's JSON lines, each rendered once for both.
    console_formatter: logging.Formatter = json_formatter
    if stream.isatty():
        console_formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(),
            ],
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(stream)
    console.setFormatter(console_formatter)
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # WatchedFileHandler reopens the file after logrotate moves it.
        to_file = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(json_formatter)
        root.addHandler(to_file)
    root.setLevel(_LEVELS[level])
    _library_noise_as_debug()
    # pynetdicom logs every PDU at INFO; its own lines are kept for warnings and errors.
    logging.getLogger("pynetdicom").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("aio_pika").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("aiormq").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("alembic").setLevel(max(_LEVELS[level], logging.WARNING))


# What the libraries say about the data they read (pydicom's "Invalid value for VR DA",
# "Error while processing tag 00200032") or about a peer that is not DICOM at all: a
# modality's habits, not our failures. They are logged at debug level, each line with the
# instance or peer it concerns, bound by the caller (structlog's contextvars).
_NOISY_LOGGERS = ("pydicom", "pynetdicom.dul")
_NOISE_BELOW = {"pydicom": logging.ERROR, "pynetdicom.dul": logging.CRITICAL}


def _library_noise_as_debug() -> None:
    logging.captureWarnings(True)
    # pydicom says each of these twice, as a warning and as a log line: the line is kept.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    for name in _NOISY_LOGGERS:
        library = logging.getLogger(name)
        for old in [f for f in library.filters if isinstance(f, _AsDebug)]:
            library.removeFilter(old)
        library.addFilter(_AsDebug(_NOISE_BELOW[name]))


class _AsDebug(logging.Filter):
    """Lower a library's records below ``ceiling`` to debug, and drop them unless debug
    logging is on (the level was checked, at the record's own level, before this filter)."""

    def __init__(self, ceiling: int) -> None:
        super().__init__()
        self._ceiling = ceiling

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self._ceiling:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class _OncePerRecord(structlog.stdlib.ProcessorFormatter):
    """A formatter shared by the file and stdout: a record is rendered once, not once per
    handler (the rendering is most of a log line's cost, paid on every instance)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: tuple[logging.LogRecord | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        last, text = self._last  # one tuple, read and replaced whole: safe across threads
        if last is record:
            return text
        text = super().format(record)
        self._last = (record, text)
        return text


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
