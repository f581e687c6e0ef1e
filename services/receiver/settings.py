"""The receiver's settings section: its AE, its ports, who may call it, its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.settings import AETitle, DatabaseURL, Section


class AllowedCaller(Section):
    """A calling AE title the receiver accepts, optionally only from one host address (the
    check is the receiver's policy, :mod:`services.receiver.policy`)."""

    ae_title: AETitle
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> AllowedCaller:
        """Read ``AE`` or ``AE@host``."""
        ae_title, _, host = text.partition("@")
        return cls(ae_title=ae_title, host=host or None)


class TLSSettings(Section):
    """Optional DICOM TLS listener beside the plain one (PS3.15 B.1 secure transport)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = Field(
        default=None, description="CA bundle; when set, peers must present a certificate"
    )
    only: bool = Field(default=False, description="serve TLS alone: no plain port")
    subjects: dict[AETitle, str] = Field(
        default_factory=dict,
        description="calling AE title -> the Common Name of the certificate it must present; "
        "such an AE title is accepted over TLS only, and such a certificate for it only",
    )

    @model_validator(mode="after")
    def _complete(self) -> TLSSettings:
        if self.only and self.port is None:
            raise ValueError("receiver.tls.only needs receiver.tls.port")
        if self.subjects and self.ca is None:
            raise ValueError("receiver.tls.subjects needs receiver.tls.ca, to verify them")
        if self.port is not None and (self.cert is None or self.key is None):
            raise ValueError("a TLS port needs both receiver.tls.cert and receiver.tls.key")
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if self.port is not None and path is not None and not path.is_file():
                raise ValueError(f"receiver.tls.{name}: no such file: {path}")
        return self


class QuerySettings(Section):
    """C-FIND from the index (Patient Root and Study Root)."""

    enabled: bool = Field(default=True, description="false: query contexts are refused")
    database_url: DatabaseURL = Field(
        default=None,
        description="the index as queries read it (a read-only role's URL); default: database.url",
    )
    max_matches: int = Field(
        default=10_000, ge=1, description="above this many matches a query is refused (0xA700)"
    )
    max_retrieve: int = Field(
        default=100_000,
        ge=1,
        description="above this many instances a retrieval (C-MOVE) is refused (0xA700)",
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds a query may read the index")
    scopes: dict[AETitle, list[str]] = Field(
        default_factory=dict,
        description="calling AE title -> the accounts whose studies it may find; "
        "an AE title not listed finds every study",
    )


class CommitmentSettings(Section):
    """Storage commitment: how long to wait for instances, and for the requester."""

    wait: float = Field(
        default=600.0,
        gt=0,
        description="seconds to wait for the instances of a request to be filed and indexed; "
        "those still missing are then reported failed",
    )
    poll_interval: float = Field(default=1.0, gt=0)
    retry: float = Field(
        default=30.0, gt=0, description="seconds between tries to report on a new association"
    )
    give_up_after: float = Field(
        default=86_400.0, gt=0, description="seconds after the request to stop trying to report"
    )


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
    max_associations_per_peer: int = Field(
        default=10, ge=1, le=1000, description="associations at once from one peer address"
    )
    max_connections: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="open connections, associated or not; at the limit a new connection "
        "displaces the oldest one that has not yet requested an association",
    )
    max_operations: int = Field(
        default=8, ge=1, le=64, description="asynchronous operations window granted a peer"
    )
    user_identities: list[str] = Field(
        default_factory=list,
        description="`name` or `name:passcode`; when set, a peer must present one of them",
    )
    io_threads: int = Field(
        default=4, ge=1, le=64, description="threads for the structure check and fsync"
    )
    max_pdu_size: int = Field(
        default=262_144, ge=0, description="largest PDU we receive; 0 means unlimited"
    )
    acse_timeout: float = Field(default=30.0, gt=0)
    dimse_timeout: float = Field(
        default=60.0, gt=0, description="seconds between the fragments of a request"
    )
    network_timeout: float = Field(
        default=120.0, gt=0, description="seconds an association may be silent between requests"
    )
    min_free_disk_mb: int = Field(default=1024, ge=0)
    max_inflated_mb: int = Field(
        default=4096,
        ge=1,
        description="MiB a deflated data set may inflate to; beyond, it is refused (0xC000)",
    )
    publish_timeout: float = Field(default=10.0, gt=0)
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="seconds to let associations in flight finish"
    )
    tls: TLSSettings = Field(default_factory=TLSSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    commitment: CommitmentSettings = Field(default_factory=CommitmentSettings)

    @field_validator("user_identities", mode="before")
    @classmethod
    def _identities_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _callers_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [AllowedCaller.parse(v.strip()) if isinstance(v, str) else v for v in value]
        return value
