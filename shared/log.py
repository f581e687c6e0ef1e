"""Structured logging: JSON lines to the log file, and to stdout (readable on a terminal).

Every event is one JSON object per line in ``<data_dir>/logs/store-server.log``; stdout gets
the same events, rendered for people when stdout is a terminal and as JSON otherwise (so a
container's log collector gets JSON). Log calls name the instance with ``sop_instance_uid``.
Above debug level no patient name reaches the log (:class:`Pseudonyms`).
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import re
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def configure_logging(
    log_file: Path | None,
    level: str = "info",
    stream: TextIO | None = None,
    accounts_root: Path | None = None,
) -> None:
    """Route structlog and the standard library (pynetdicom, aio-pika) to file and stdout.

    ``stream`` replaces stdout: the one-shot commands log to stderr so that their output
    (``--json`` for scripts) stays clean. Above debug level, study folders (named after the
    patient) are logged as pseudonyms and paths relative to ``accounts_root``
    (:class:`Pseudonyms`).
    """
    stream = stream or sys.stdout
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # In the formatters, which each configuration makes anew: structlog's loggers keep the
    # processors they were first made with.
    private: list[Any] = [Pseudonyms(accounts_root)] if _LEVELS[level] > logging.DEBUG else []
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
            *private,
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
                *private,
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


# Fields that hold a study folder (its last component is the folder).
_FOLDER_FIELDS = frozenset({"study_folder", "from_folder", "to_folder", "folder"})
# Fields logged whole only at debug level: what a site's command printed may be anything.
_DEBUG_ONLY_FIELDS = frozenset({"output"})
# The study folder in a path: the component before Dicom/ or the scan sheet.
_STUDY_IN_PATH = re.compile(r"[^/\s'\"]+(?=/(?:Dicom(?:/|$|[\s'\"])|scansheet\.))")


def pseudonym(folder: str) -> str:
    """A study folder's name as logged above debug level: the same folder, the same name."""
    return "study-" + hashlib.sha256(folder.encode("utf-8", "surrogatepass")).hexdigest()[:10]


class Pseudonyms:
    """Keep patient names out of the log above debug level: a study folder (named after the
    patient, its date and accession) becomes ``study-<digest>`` wherever a path or a folder
    field shows it, paths are given relative to the accounts root, and a hook's output is
    replaced by its length. UIDs, accounts and counts are logged as they are; ``store-server
    study UID`` shows the folder, and the digest of a folder's name is its pseudonym."""

    def __init__(self, accounts_root: Path | None) -> None:
        self._root = str(accounts_root).rstrip("/") + "/" if accounts_root else None

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in event.items():
            if not isinstance(value, str) or key == "event":
                continue
            if key in _DEBUG_ONLY_FIELDS:
                event[key] = f"({len(value)} characters, logged at debug level)"
                continue
            if key in _FOLDER_FIELDS:
                head, _, last = value.rstrip("/").rpartition("/")
                value = f"{head}/{pseudonym(last)}" if head else pseudonym(last)
            elif "Dicom" in value or "scansheet." in value:
                value = _STUDY_IN_PATH.sub(lambda found: pseudonym(found.group(0)), value)
            else:
                continue
            event[key] = value.replace(self._root, "") if self._root else value
        return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
