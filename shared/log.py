"""Structured logging: JSON lines to the log file, and to stdout (readable on a terminal).

Every event is one JSON object per line in ``<data_dir>/logs/store-server.log``; stdout gets
the same events, rendered for people when stdout is a terminal and as JSON otherwise (so a
container's log collector gets JSON). Log calls name the instance with ``sop_instance_uid``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
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
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    console_renderer: Any = (
        structlog.dev.ConsoleRenderer() if stream.isatty() else structlog.processors.JSONRenderer()
    )
    console_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([] if stream.isatty() else [structlog.processors.format_exc_info]),
            console_renderer,
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
    # pynetdicom logs every PDU at INFO; its own lines are kept for warnings and errors.
    logging.getLogger("pynetdicom").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("aio_pika").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("aiormq").setLevel(max(_LEVELS[level], logging.WARNING))
    logging.getLogger("alembic").setLevel(max(_LEVELS[level], logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
