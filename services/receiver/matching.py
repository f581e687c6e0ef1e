"""Attribute matching for C-FIND (PS3.4 C.2.2.2): one query key against an entity's values.

A key's value is read as alternatives separated by backslashes (a list of UIDs, or "MR\\CT"
for Modalities in Study), each one a single value, a value with wildcards (``*`` any run of
characters, ``?`` one character) or, for dates and times, a range (``a-b``, ``-b``, ``a-``).
An empty value matches everything (universal matching). An entity with several values (a
study's modalities) matches when one of them does.

Person names are compared without case and Latin accents, as names are everywhere else in
the server (``shared.folding``): ``muller*`` finds ``Müller^Hans``. Other text is compared as
written, as the standard asks.

The index narrows the candidates with the SQL a key allows (:func:`Condition.sql_hint`); this
module decides, so that SQLite's case-insensitive LIKE or a column cut short never widens an
answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from shared.folding import fold, fold_case_and_accents

# VRs whose value is a point in time: range matching, no wildcards (PS3.4 C.2.2.2.5).
TEMPORAL = frozenset({"DA", "TM", "DT"})
# VRs where wildcards have no meaning: the value is compared as written.
# VRs whose value is a number: "7" and "07" are the same.
NUMERIC = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD"})
LITERAL = frozenset({"UI", "DA", "TM", "DT"}) | NUMERIC
_WILDCARDS = re.compile(r"[*?]")


def _time(text: str, fill: str) -> str:
    """A TM value to the full HHMMSS.FFFFFF, missing digits taken from ``fill``."""
    text = text.replace(":", "").strip()
    whole, _, fraction = text.partition(".")
    full = "000000.000000" if fill == "0" else "235959.999999"
    return (whole + full[len(whole) : 6]) + "." + (fraction + full[7 + len(fraction) :])


def _point(vr: str, text: str, fill: str) -> str:
    """A date, time or date-time made comparable as text."""
    text = text.strip()
    if vr == "TM":
        return _time(text, fill)
    if vr == "DA":
        return text.replace(".", "")  # the old ACR-NEMA form, 1990.01.31
    return text  # DT: YYYYMMDDHHMMSS.FFFFFF&ZZXX, compared as written


@dataclass(frozen=True)
class Alternative:
    """One of a key's alternatives."""

    vr: str
    text: str

    @cached_property
    def is_range(self) -> bool:
        return self.vr in TEMPORAL and "-" in self.text.lstrip("+")

    @cached_property
    def has_wildcards(self) -> bool:
        return self.vr not in LITERAL and bool(_WILDCARDS.search(self.text))

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        text = _name(self.text) if self.vr == "PN" else self.text
        parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in text)
        return re.compile("".join(parts), re.DOTALL)

    def matches(self, value: str) -> bool:
        if self.is_range:
            low, _, high = self.text.partition("-")
            if low.strip() and _point(self.vr, value, "0") < _point(self.vr, low, "0"):
                return False
            return not high.strip() or _point(self.vr, value, "0") <= _point(self.vr, high, "9")
        if self.vr == "PN":
            return self._pattern.fullmatch(_name(value)) is not None
        if self.has_wildcards:
            return self._pattern.fullmatch(value) is not None
        if self.vr == "TM":
            return _point("TM", value, "0") == _point("TM", self.text, "0")
        if self.vr in NUMERIC:
            return _number(value) == _number(self.text)
        return value.strip() == self.text.strip()


def _name(text: str) -> str:
    """A person name made comparable: no case, no Latin accents, no empty trailing components."""
    return "=".join(
        "^".join(part.strip() for part in group.split("^")).rstrip("^")
        for group in fold_case_and_accents(text.strip()).split("=")
    ).rstrip("=")


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip()


@dataclass(frozen=True)
class Condition:
    """A query key with a value to match: its alternatives."""

    keyword: str
    vr: str
    text: str

    @cached_property
    def alternatives(self) -> list[Alternative]:
        parts = self.text.split("\\")
        return [Alternative(self.vr, part) for part in parts if part.strip()] or [
            Alternative(self.vr, "")
        ]

    @property
    def universal(self) -> bool:
        return not self.text.strip("\\ *")

    def matches(self, values: list[str]) -> bool:
        """Whether an entity with ``values`` (none: the attribute is absent or empty) matches."""
        if self.universal:
            return True
        return any(alt.matches(value) for value in values for alt in self.alternatives)

    def folded_prefix(self) -> str | None:
        """For a name: what every matching name starts with once folded as the index folds
        patients' names (``shared.folding.fold``), None when that is nothing."""
        if self.universal or len(self.alternatives) != 1:
            return None
        prefix = fold(_WILDCARDS.split(self.alternatives[0].text, maxsplit=1)[0])
        return prefix or None

    def sql_hint(self) -> tuple[str, list[str]] | None:
        """How the index may narrow by this key: ``("in", values)``, ``("range", [low, high])``
        or ``("like", [pattern])``; None when it cannot (names, times, wildcard lists)."""
        if self.universal or self.vr in ("PN", "TM"):
            return None
        alternatives = self.alternatives
        if all(not a.is_range and not a.has_wildcards for a in alternatives):
            if self.vr in NUMERIC:
                return None  # "7" and "07" are the same number, not the same text
            return "in", [_point(self.vr, a.text, "0") for a in alternatives]
        if len(alternatives) != 1:
            return None
        only = alternatives[0]
        if only.is_range and self.vr == "DA":
            low, _, high = only.text.partition("-")
            return "range", [_point("DA", low, "0"), _point("DA", high, "9")]  # "": unbounded
        if only.has_wildcards:
            escaped = only.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return "like", [escaped.replace("*", "%").replace("?", "_")]
        return None
