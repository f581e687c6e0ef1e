"""Which rules an instance or a study meets, from what is known of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from services.forwarder.settings import ForwardRule


@dataclass(frozen=True)
class Facts:
    """What the rules look at: an instance's (or a study's) account, calling AE titles,
    modalities, and its header's values by keyword."""

    account: str
    calling_aes: frozenset[str]
    modalities: frozenset[str]
    values: Callable[[str], list[str]]


def met(rule: ForwardRule, facts: Facts) -> bool:
    if rule.accounts and facts.account not in rule.accounts:
        return False
    if rule.calling_aes and not facts.calling_aes & set(rule.calling_aes):
        return False
    if rule.modalities and not facts.modalities & {m.upper() for m in rule.modalities}:
        return False
    return all(
        any(_pattern(wanted).fullmatch(value) for value in facts.values(keyword))
        for keyword, wanted in rule.tags.items()
    )


@lru_cache(maxsize=256)
def _pattern(wanted: str) -> re.Pattern[str]:
    """A DICOM wildcard value (``*``, ``?``) as a regular expression, case-sensitive."""
    return re.compile(
        "".join("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in wanted)
    )
