"""What every settings section shares, and the sections of what ``shared/`` provides.

Each service defines its own section beside its code (``services/<role>/settings.py``), and
``services.settings`` composes them into the one object a process is built from. Here: the
section base class (unknown keys are errors), the AE title type, the bus, database and log
sections, the data directory's paths, and how a wrong value is described: naming every
offending setting as it is written in the TOML file and in the environment.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.files import file_error_reason

ENV_PREFIX = "STORE_SERVER_"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: no backslash, no control


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each setting and what is wrong."""


def _ae_title(value: str) -> str:
    stripped = value.strip()
    if not stripped or not _AE_TITLE.match(stripped):
        raise ValueError("must be 1 to 16 printable characters without a backslash")
    return stripped


AETitle = Annotated[str, AfterValidator(_ae_title)]


def _port_in_range(url: str) -> None:
    try:
        port = urlsplit(url).port
    except ValueError:
        port = None
    else:
        if port != 0:
            return
    written = urlsplit(url).netloc.rpartition("@")[2].rpartition(":")[2]
    raise ValueError(f"port {written} is not a port number (1 to 65535)")


def existing_folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    return path


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo in the TOML file is reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BusSettings(Section):
    """The message bus: ``memory://`` in one process, ``amqp://`` RabbitMQ between processes."""

    url: str = "memory://"
    exchange: str = Field(default="store-server", pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    prefetch: int = Field(default=32, ge=1, le=10_000)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff: float = Field(default=1.0, gt=0, description="seconds before the first retry")
    retry_backoff_max: float = Field(default=60.0, gt=0)
    publish_timeout: float = Field(default=10.0, gt=0)
    memory_queue_limit: int = Field(default=100_000, ge=1)
    memory_split: bool = Field(
        default=True,
        description="on memory://, `store-server run` runs the router, indexer and scan-sheet "
        "service in a second process linked to the receiver's, so that each has a core",
    )
    connect_timeout: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "amqp://", "amqps://")):
            raise ValueError("must start with memory://, amqp:// or amqps://")
        _port_in_range(value)
        return value


def database_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("sqlite://", "postgresql://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    if value is not None:
        _port_in_range(value)
    return value


DatabaseURL = Annotated[str | None, AfterValidator(database_url)]


class DatabaseSettings(Section):
    """The index: ``sqlite:///path`` embedded, ``postgresql://`` in production."""

    url: DatabaseURL = Field(default=None, description="default: sqlite:///<data_dir>/index.sqlite")
    connect_timeout: float = Field(default=60.0, gt=0)
    query_role: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_-]{0,62}$",
        description="PostgreSQL: a login role that may only read the index, made (or its "
        "password set) by `store-server db upgrade`, for the receiver's queries",
    )
    query_password: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{8,128}$")

    @model_validator(mode="after")
    def _role_with_password(self) -> DatabaseSettings:
        if (self.query_role is None) != (self.query_password is None):
            raise ValueError("database.query_role and database.query_password go together")
        return self


class Destination(Section):
    """A DICOM node we send to (C-MOVE's Move Destination, forwarding), known by its AE
    title: where it listens, and whether over TLS."""

    host: str
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    ca: Path | None = Field(
        default=None, description="CA bundle the node's certificate is checked against"
    )
    cert: Path | None = Field(
        default=None, description="our client certificate, if it asks for one"
    )
    key: Path | None = None
    timeout: float = Field(default=30.0, gt=0, description="seconds to connect and per reply")

    @model_validator(mode="after")
    def _files(self) -> Destination:
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: Path | None = Field(default=None, description="default: <data_dir>/logs/store-server.log")
    to_file: bool = Field(
        default=True,
        description="false: no default file, stdout only unless file is set (containers)",
    )


class SyslogSettings(Section):
    """Where the audit trail also goes, as RFC 5424 messages in the DICOM audit message format
    (IHE ATNA): a collector (an audit record repository) by host and port."""

    host: str | None = Field(default=None, description="the collector; none: no syslog")
    port: int = Field(default=6514, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "tls"
    ca: Path | None = Field(
        default=None, description="CA the collector's certificate is checked against"
    )
    cert: Path | None = Field(default=None, description="our client certificate (mutual TLS)")
    key: Path | None = None
    app_name: str = Field(default="store-server", max_length=48)

    @model_validator(mode="after")
    def _complete(self) -> SyslogSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key: both or neither")
        if self.transport != "tls" and (self.ca or self.cert):
            raise ValueError(f"ca, cert and key need transport = 'tls', not {self.transport!r}")
        return self


class AuditSettings(Section):
    """The audit trail's copies outside the index: a JSON-lines file, and a syslog collector."""

    log_file: Path | None = Field(default=None, description="default: <data_dir>/logs/audit.log")
    site: str | None = Field(default=None, description="AuditEnterpriseSiteID (the site)")
    source_id: str | None = Field(
        default=None, description="AuditSourceID; default: the receiver's AE title"
    )
    poll_interval: float = Field(default=2.0, gt=0, le=3600, description="seconds")
    syslog: SyslogSettings = Field(default_factory=SyslogSettings)


@dataclass(frozen=True)
class DataPaths:
    """Where a process keeps its files, under the data directory (see the README)."""

    data_dir: Path

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    @property
    def quarantine(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def commitments(self) -> Path:
        """Storage commitment transactions not yet reported."""
        return self.data_dir / "commitments"

    @property
    def accounts(self) -> Path:
        return self.data_dir / "accounts"


def read_config(path: Path) -> None:
    """Check that ``--config`` names a TOML file that can be read, or say why not; the values
    themselves are read by the settings' TOML source."""
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"--config {path}: {file_error_reason(error)}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"--config {path}: not valid TOML: {error}") from None


def describe(error: ValidationError, config: Path | None) -> str:
    """Every problem on one line, each named as in the TOML file and in the environment."""
    problems = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"] if not isinstance(part, int)]
        message = problem["msg"].removeprefix("Value error, ")
        if not location:  # a check across settings: its message names them
            problems.append(message)
            continue
        dotted = ".".join(location)
        env_name = ENV_PREFIX + "__".join(location).upper()
        problems.append(f"{dotted} (environment {env_name}): {message}")
    described = f"invalid setting{'s' if len(problems) > 1 else ''} " + "; ".join(problems)
    return described + (f" (config file: {config})" if config is not None else "")
