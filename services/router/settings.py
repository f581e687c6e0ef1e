"""The router's settings section, and the accounts a config file may declare."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from services.router.naming import STUDY_FOLDER_FIELDS
from shared.settings import Section


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
    batch_size: int = Field(
        default=32, ge=1, le=500, description="deliveries filed together, in one transaction"
    )
    max_wait_ms: int = Field(
        default=200, ge=0, le=10_000, description="how long a batch waits to fill once begun"
    )
    prefetch: int = Field(default=64, ge=1, le=1000)
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
