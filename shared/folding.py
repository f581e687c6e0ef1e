"""How names are compared: case, Latin accents and punctuation folded away.

One folding for every place a person looks a name up: physician names matched to accounts
(``services.router.physicians``) and patients found by ``store-server studies --patient``, so
that ``muller`` finds ``Müller`` wherever a name is searched.
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """``text`` in lower case, without Latin accents, punctuation as single spaces."""
    letters = _without_latin_accents(unicodedata.normalize("NFKC", text))
    return " ".join("".join(c if c.isalnum() else " " for c in letters.casefold()).split())


def fold_case_and_accents(text: str) -> str:
    """``text`` in lower case and without Latin accents, its punctuation kept (for matching
    DICOM person names, whose ``^`` and ``=`` separate components)."""
    return _without_latin_accents(unicodedata.normalize("NFKC", text)).casefold()


def _without_latin_accents(text: str) -> str:
    """Drop accents from Latin letters only: a kana's voicing mark is part of the letter."""
    kept: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char) and kept and ord(kept[-1]) < 0x0250:
            continue
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))
