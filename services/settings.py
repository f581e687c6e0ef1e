"""The settings of a store-server process: every section, composed; built in ``main()``.

Precedence, highest first: command-line flags, ``STORE_SERVER_*`` environment variables
(``__`` separates nested sections, e.g. ``STORE_SERVER_RECEIVER__PORT``), the TOML file given
with ``--config``, then the defaults. Each service's section lives beside its code and each
service is given only its own section and the :class:`DataPaths`; this module composes them.
A wrong value raises :class:`SettingsError` naming every offending setting.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from services.forwarder import ForwarderSettings
from services.indexer import IndexerSettings
from services.receiver import ReceiverSettings
from services.router import AccountSeed, RouterSettings
from services.scansheet import ScanSheetSettings
from shared.settings import (
    ENV_PREFIX,
    AETitle,
    AuditSettings,
    BusSettings,
    DatabaseSettings,
    DataPaths,
    Destination,
    LogSettings,
    SettingsError,
    describe,
    existing_folder,
    read_config,
)

__all__ = ["DataPaths", "Settings", "SettingsError", "load_settings"]

# The --config file of the settings being built (a settings source is a class, built by
# pydantic-settings; this is how it learns the file of this one call).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("config_file", default=None)


class Settings(BaseSettings):
    """Everything a store-server process can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Annotated[Path, AfterValidator(existing_folder)] = Path("data")
    instance: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_-]{0,32}$",
        description="tells apart processes of one role on one host (systemd's router@N)",
    )
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    scansheet: ScanSheetSettings = Field(default_factory=ScanSheetSettings)
    accounts: list[AccountSeed] = Field(default_factory=list)
    destinations: dict[AETitle, Destination] = Field(
        default_factory=dict,
        description="DICOM nodes by AE title: C-MOVE destinations, forwarding, reports",
    )
    forwarder: ForwarderSettings = Field(default_factory=ForwarderSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @field_validator("destinations")
    @classmethod
    def _titles_without_case(cls, value: dict[str, Destination]) -> dict[str, Destination]:
        # Environment variables' names reach here in lower case (STORE_SERVER_DESTINATIONS__
        # PACS__HOST), so titles are kept, and looked up, in upper case, as nodes use them.
        titles = [title.upper() for title in value]
        if len(set(titles)) != len(titles):
            raise ValueError("two destinations differ only in case")
        return {title.upper(): node for title, node in value.items()}

    @model_validator(mode="after")
    def _no_default_password_off_this_host(self) -> Settings:
        for name, url in (("bus.url", self.bus.url), ("database.url", self.database.url)):
            refused = default_password(url)
            if refused is not None:
                raise ValueError(
                    f"{name}: the password is {refused}, known to anyone; a server on another "
                    "host must have its own (the default is kept for this host only)"
                )
        return self

    @model_validator(mode="after")
    def _rules_send_somewhere_known(self) -> Settings:
        for index, rule in enumerate(self.forwarder.rules):
            if rule.destination.upper() not in self.destinations:
                raise ValueError(
                    f"forwarder.rules[{index}].destination: {rule.destination!r} is not one "
                    "of [destinations]"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = _CONFIG_FILE.get()
        environment = EnvironmentWithFiles(settings_cls)
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, environment)
        if config is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=config),)
        return sources

    @property
    def paths(self) -> DataPaths:
        return DataPaths(self.data_dir)

    @property
    def spool_dir(self) -> Path:
        return self.paths.spool

    @property
    def quarantine_dir(self) -> Path:
        return self.paths.quarantine

    @property
    def accounts_dir(self) -> Path:
        return self.paths.accounts

    @property
    def log_file(self) -> Path | None:
        """Where the log is written besides stdout; None when only stdout is: a file that is
        configured always is, the default one unless ``log.to_file`` is false."""
        if self.log.file is not None:
            return self.log.file
        return self.data_dir / "logs" / "store-server.log" if self.log.to_file else None

    @property
    def audit_log_file(self) -> Path:
        return self.audit.log_file or self.data_dir / "logs" / "audit.log"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def query_database_url(self) -> str:
        """The index as the receiver's queries read it."""
        return self.receiver.query.database_url or self.database_url


class EnvironmentWithFiles(EnvSettingsSource):
    """The ``STORE_SERVER_*`` environment, where any setting may instead be given as the
    content of a file named by the same variable with ``_FILE`` appended, as containers pass
    secrets (``STORE_SERVER_BUS__URL_FILE=/run/secrets/bus-url``). The file's content, its
    trailing line break removed, is the value; the variable and the file name never reach a
    log. A variable given both ways, or a file that cannot be read, stops start-up naming it."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        found = dict(super()._load_env_vars())
        prefix = ENV_PREFIX.lower()
        for name in [n for n in found if n.startswith(prefix) and n.endswith("_file")]:
            setting = name[len(prefix) : -len("_file")]
            if _is_setting(name[len(prefix) :]) or not _is_setting(setting):
                continue  # a setting whose own name ends so (log.to_file), or no setting
            target = name[: -len("_file")]
            if target in found:
                raise SettingsError(f"{target.upper()} and {name.upper()} are both set: give one")
            try:
                found[target] = Path(str(found.pop(name))).read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or str(error)
                message = f"{name.upper()}: cannot read the file it names: {reason}"
                raise SettingsError(message) from None
        return found


# Passwords every installation starts with, by URL scheme.
DEFAULT_PASSWORDS = {
    "amqp": {"guest": "RabbitMQ's default (guest)"},
    "amqps": {"guest": "RabbitMQ's default (guest)"},
    "postgresql": {"postgres": "PostgreSQL's usual default (postgres)"},
}


def default_password(url: str | None) -> str | None:
    """What is wrong with ``url``'s password when it is a well-known default and the server
    is not on this host; None when nothing is."""
    if url is None:
        return None
    parts = urlsplit(url)
    known = DEFAULT_PASSWORDS.get(parts.scheme, {})
    if parts.password not in known:
        return None
    host = (parts.hostname or "localhost").lower()
    if host == "localhost" or host.startswith("/"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name: not this host, as far as a setting can tell
    return known[str(parts.password)]


def _is_setting(path: str) -> bool:
    """Whether ``bus__url`` (an environment variable's name past the prefix) is a setting."""
    model: Any = Settings
    parts = path.split("__")
    while parts:
        part = parts.pop(0)
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        if get_origin(annotation) is dict and parts:
            parts.pop(0)  # a key of the table: [destinations.PACS]
            annotation = get_args(annotation)[1]
        model = annotation
    return True


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings. ``overrides`` are the command-line flags, nested like the TOML file."""
    if config is not None:
        read_config(config)
    token = _CONFIG_FILE.set(config)
    try:
        return Settings(**(overrides or {}))
    except ValidationError as error:
        raise SettingsError(describe(error, config)) from None
    finally:
        _CONFIG_FILE.reset(token)
