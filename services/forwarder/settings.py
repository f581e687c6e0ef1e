"""The forwarder's settings section: its rules, and how it sends and retries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydicom.datadict import tag_for_keyword

from shared.settings import AETitle, Section


class ForwardRule(Section):
    """What goes where: each instance (``when = "instance"``, as it is filed) or each study
    (``"study"``, once complete) that meets every condition given is sent to ``destination``
    (an AE title of ``[destinations]``). An empty condition is met by everything."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    destination: AETitle
    when: Literal["instance", "study"] = "instance"
    accounts: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=list)
    calling_aes: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(
        default_factory=dict,
        description='DICOM keyword -> value, with * and ? wildcards ("BodyPartExamined" = "HEAD")',
    )

    @field_validator("tags")
    @classmethod
    def _known_keywords(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [keyword for keyword in value if tag_for_keyword(keyword) is None]
        if unknown:
            raise ValueError(f"not DICOM keywords: {', '.join(sorted(unknown))}")
        return value

    @property
    def needs_header(self) -> bool:
        return bool(self.modalities or self.tags)


class Hook(Section):
    """A command run once per study, after its scan sheet is written: the study folder is its
    last argument, the study as `store-server study UID --json` shows it on its standard
    input. No shell: the command is a list of arguments."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    command: list[str] = Field(min_length=1)
    timeout: float = Field(default=300.0, gt=0, description="seconds before it is killed")
    accounts: list[str] = Field(default_factory=list, description="empty: every account")


class ForwarderSettings(Section):
    """Forwarding: the rules, batches, and patience with a destination that is down."""

    rules: list[ForwardRule] = Field(default_factory=list)
    hooks: list[Hook] = Field(default_factory=list)
    batch_size: int = Field(default=50, ge=1, le=1000, description="instances per association")
    prefetch: int = Field(default=100, ge=1, le=10_000)
    max_wait_ms: int = Field(default=500, ge=0, le=60_000)
    poll_interval: float = Field(
        default=2.0, gt=0, description="seconds between looks for instances due again"
    )
    retry_backoff: float = Field(
        default=5.0, gt=0, description="seconds before the first retry of a destination down"
    )
    retry_backoff_max: float = Field(default=300.0, gt=0)
    max_refusals: int = Field(
        default=3, ge=1, le=100, description="times a destination may refuse an instance"
    )
    lease: float = Field(
        default=600.0, gt=0, description="seconds a batch being sent stays claimed"
    )

    @field_validator("rules", "hooks")
    @classmethod
    def _unique_names(cls, value: list[ForwardRule] | list[Hook]) -> list[ForwardRule] | list[Hook]:
        names = [item.name for item in value]
        if len(set(names)) != len(names):
            raise ValueError("two have the same name")
        return value
