"""Physician names as DICOM PN values, reduced to the key accounts are matched on.

Matching is on the family and given name components, ignoring case, accents, titles (the PN
prefix and suffix components, and the usual honorifics written into the names themselves)
and punctuation. Each of a PN's component groups (alphabetic, ideographic, phonetic) gives a
key, so ``Yamada^Tarou=山田^太郎`` matches an account registered under either spelling.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.multival import MultiValue

from shared.folding import fold

_TITLES = {"dr", "prof", "professor", "doctor", "md", "phd", "mr", "mrs", "ms", "mme", "pr"}


def _simplify(component: str) -> str:
    return " ".join(word for word in fold(component).split() if word not in _TITLES)


def match_keys(value: str) -> list[str]:
    """The keys of one PN value (``Family^Given^Middle^Prefix^Suffix[=...=...]``)."""
    keys: list[str] = []
    for group in value.split("="):
        parts = group.split("^")
        family = _simplify(parts[0]) if parts else ""
        given = _simplify(parts[1]) if len(parts) > 1 else ""
        if family or given:
            key = f"{family}^{given}"
            if key not in keys:
                keys.append(key)
    return keys


def named(values: Iterable[str]) -> list[str]:
    """The non-empty PN values among ``values``, in order."""
    return [value for value in values if match_keys(value)]


def pn_values(element_value: object) -> list[str]:
    """A PN element's values as text, whether pydicom gives one value or several."""
    if element_value is None or element_value == "":
        return []
    if isinstance(element_value, list | tuple | MultiValue):
        return [str(v) for v in element_value]
    return [str(element_value)]
