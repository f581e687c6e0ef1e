"""Settings: one typed object, built in ``main()`` from flags, environment, TOML file, defaults.

Precedence, highest first: command-line flags, ``STORE_SERVER_*`` environment variables
(``__`` separates nested sections, e.g. ``STORE_SERVER_RECEIVER__PORT``), the TOML file given
with ``--config``, then the defaults below. A wrong value raises :class:`SettingsError`, whose
message names every offending setting as it would be written in the TOML file and in the
environment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
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
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
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
Paper = Literal["A4", "Letter"]


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


def _folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    return path


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo in the TOML file is reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowedCaller(Section):
    """A calling AE title the receiver accepts, optionally only from one host address."""

    ae_title: AETitle
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> AllowedCaller:
        """Read ``AE`` or ``AE@host``."""
        ae_title, _, host = text.partition("@")
        return cls(ae_title=ae_title, host=host or None)

    def allows(self, ae_title: str, host: str) -> bool:
        return self.ae_title == ae_title.strip() and (self.host is None or self.host == host)


class TLSSettings(Section):
    """Optional DICOM TLS listener beside the plain one (PS3.15 B.1 secure transport)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = Field(
        default=None, description="CA bundle; when set, peers must present a certificate"
    )

    @model_validator(mode="after")
    def _complete(self) -> TLSSettings:
        if self.port is not None and (self.cert is None or self.key is None):
            raise ValueError("a TLS port needs both receiver.tls.cert and receiver.tls.key")
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if self.port is not None and path is not None and not path.is_file():
                raise ValueError(f"receiver.tls.{name}: no such file: {path}")
        return self


class ReceiverSettings(Section):
    """The DICOM listener."""

    ae_title: AETitle = "STORE_SERVER"
    host: str = "0.0.0.0"
    port: int = Field(default=11112, ge=0, le=65535)
    allowed_callers: list[AllowedCaller] = Field(
        default_factory=list, description="empty: any calling AE title is accepted"
    )
    require_called_ae: bool = True
    accept_unknown_sop_classes: bool = True
    max_associations: int = Field(default=20, ge=1, le=1000)
    max_pdu_size: int = Field(
        default=262_144, ge=0, description="largest PDU we receive; 0 means unlimited"
    )
    acse_timeout: float = Field(default=30.0, gt=0)
    dimse_timeout: float = Field(default=60.0, gt=0)
    network_timeout: float = Field(default=120.0, gt=0)
    min_free_disk_mb: int = Field(default=1024, ge=0)
    publish_timeout: float = Field(default=10.0, gt=0)
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="seconds to let associations in flight finish"
    )
    tls: TLSSettings = Field(default_factory=TLSSettings)

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _callers_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [AllowedCaller.parse(v.strip()) if isinstance(v, str) else v for v in value]
        return value


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
    connect_timeout: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "amqp://", "amqps://")):
            raise ValueError("must start with memory://, amqp:// or amqps://")
        _port_in_range(value)
        return value


class DatabaseSettings(Section):
    """The index: ``sqlite:///path`` embedded, ``postgresql://`` in production."""

    url: str | None = Field(default=None, description="default: sqlite:///<data_dir>/index.sqlite")
    connect_timeout: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite://", "postgresql://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if value is not None:
            _port_in_range(value)
        return value


STUDY_FOLDER_FIELDS = (
    "patient_name",
    "patient_id",
    "study_date",
    "study_time",
    "study_description",
    "accession",
    "study_id",
    "modality",
    "study_key",
    "study_uid_hash",
)


class AccountSeed(Section):
    """An account declared in the config file; created at start-up when missing."""

    name: str = Field(min_length=1, max_length=128)
    physicians: list[str] = Field(default_factory=list)
    home: Path | None = None
    owner_uid: int | None = Field(default=None, ge=0)
    owner_gid: int | None = Field(default=None, ge=0)


class RouterSettings(Section):
    """Filing: which account, which folder, which name, and what to do with a re-send."""

    study_folder_template: str = Field(
        default="{patient_name}_{study_date}_{study_key}",
        description="fields: " + ", ".join(STUDY_FOLDER_FIELDS),
    )
    on_duplicate: Literal["replace", "keep-first"] = Field(
        default="replace", description="the same SOP Instance UID sent again"
    )
    directory_mode: int = Field(default=0o750, ge=0, le=0o7777)
    file_mode: int = Field(default=0o640, ge=0, le=0o7777)
    prefetch: int = Field(default=16, ge=1, le=1000)
    account_cache_seconds: float = Field(default=10.0, ge=0)
    database_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a filing is retried this long while the database is unreachable, "
        "before it goes back to the bus as a failed attempt",
    )

    @field_validator("study_folder_template")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        import string

        try:
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        except ValueError as error:
            raise ValueError(f"not a valid template: {error}") from None
        unknown = sorted(set(names) - set(STUDY_FOLDER_FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; known: {list(STUDY_FOLDER_FIELDS)}")
        if not names:
            raise ValueError("must use at least one field")
        return template


class IndexerSettings(Section):
    """Indexing filed instances: batch size and wait, and how long to ride out a database outage."""

    batch_size: int = Field(default=200, ge=1, le=5000, description="deliveries per batch")
    max_wait_ms: int = Field(
        default=200, ge=0, le=60_000, description="longest wait for a batch to fill"
    )
    prefetch: int = Field(default=400, ge=1, le=20_000, description="RabbitMQ deliveries in hand")
    database_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a batch is retried this long while the database is unreachable, "
        "before it goes back to the bus as a failed attempt",
    )
    reconcile_page: int = Field(
        default=2000, ge=1, le=100_000, description="audit events read per step at start-up"
    )

    @model_validator(mode="after")
    def _prefetch_holds_a_batch(self) -> IndexerSettings:
        if self.prefetch < self.batch_size:
            raise ValueError("indexer.prefetch must be at least indexer.batch_size")
        return self


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
    thumbnail_size: int = Field(default=192, ge=32, le=1024)
    thumbnail_timeout: float = Field(default=20.0, gt=0, description="seconds per image")
    thumbnail_max_pixels: int = Field(default=50_000_000, ge=1, description="per frame")
    thumbnail_workers: int = Field(default=2, ge=1, le=64, description="worker processes")
    paper: Paper = Field(default="A4", description="the paper the sheet is printed on")


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: Path | None = Field(default=None, description="default: <data_dir>/logs/store-server.log")


class Settings(BaseSettings):
    """Everything a store-server process can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Annotated[Path, AfterValidator(_folder)] = Path("data")
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    scansheet: ScanSheetSettings = Field(default_factory=ScanSheetSettings)
    accounts: list[AccountSeed] = Field(default_factory=list)
    log: LogSettings = Field(default_factory=LogSettings)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def accounts_dir(self) -> Path:
        return self.data_dir / "accounts"

    @property
    def log_file(self) -> Path:
        return self.log.file or self.data_dir / "logs" / "store-server.log"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings. ``overrides`` are the command-line flags, nested like the TOML file."""
    file_values = _read_toml(config) if config is not None else {}

    class _Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _DictSource(settings_cls, file_values))

    try:
        return _Sourced(**(overrides or {}))
    except ValidationError as error:
        raise SettingsError(_describe(error, config)) from None


class _DictSource(PydanticBaseSettingsSource):
    """The TOML file's values, lowest precedence before the defaults."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"--config {path}: {file_error_reason(error)}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"--config {path}: not valid TOML: {error}") from None


def _describe(error: ValidationError, config: Path | None) -> str:
    """Every problem on one line, each named as in the TOML file and in the environment."""
    problems = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"] if not isinstance(part, int)]
        dotted = ".".join(location) or "(settings)"
        env_name = ENV_PREFIX + "__".join(location).upper()
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{dotted} (environment {env_name}): {message}")
    described = f"invalid setting{'s' if len(problems) > 1 else ''} " + "; ".join(problems)
    return described + (f" (config file: {config})" if config is not None else "")
