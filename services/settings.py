"""The settings of a store-server process: every section, composed; built in ``main()``.

Precedence, highest first: command-line flags, ``STORE_SERVER_*`` environment variables
(``__`` separates nested sections, e.g. ``STORE_SERVER_RECEIVER__PORT``), the TOML file given
with ``--config``, then the defaults. Each service's section lives beside its code and each
service is given only its own section and the :class:`DataPaths`; this module composes them.
A wrong value raises :class:`SettingsError` naming every offending setting.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
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

    @model_validator(mode="after")
    def _rules_send_somewhere_known(self) -> Settings:
        for index, rule in enumerate(self.forwarder.rules):
            if rule.destination not in self.destinations:
                raise ValueError(
                    f"forwarder.rules[{index}].destination: {rule.destination!r} is not one "
                    "of [destinations]"
                )
        return self

    log: LogSettings = Field(default_factory=LogSettings)

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
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
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
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def query_database_url(self) -> str:
        """The index as the receiver's queries read it."""
        return self.receiver.query.database_url or self.database_url


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
