"""The matching rules of PS3.4 C.2.2.2, key by key, as the index's answers rely on them."""

from __future__ import annotations

import pytest

from services.receiver.matching import Condition


@pytest.mark.parametrize(
    ("vr", "query", "values", "expected"),
    [
        ("PN", "muller*", ["Müller^Hans"], True),
        ("PN", "MÜLLER^HANS", ["Muller^Hans^^^"], True),
        ("PN", "Mu?ler^Hans", ["Müller^Hans"], True),
        ("PN", "Hans*", ["Müller^Hans"], False),
        ("PN", "*hans", ["Müller^Hans"], True),
        ("PN", "Doe", ["Doe^Jane"], False),  # a single value is the whole name
        ("LO", "Brain*", ["Brain MRI"], True),
        ("LO", "brain*", ["Brain MRI"], False),  # text other than names: as written
        ("LO", "ACC_1", ["ACC_1"], True),
        ("LO", "ACC%", ["ACC_1"], False),  # SQL's wildcards are plain characters here
        ("CS", "MR\\CT", ["CT", "SR"], True),
        ("CS", "MR\\CT", ["US"], False),
        ("UI", "1.2.3\\1.2.4", ["1.2.4"], True),
        ("UI", "1.2.*", ["1.2.4"], False),  # no wildcards in UIDs
        ("DA", "20260101-20260131", ["20260131"], True),
        ("DA", "20260101-20260131", ["20260201"], False),
        ("DA", "-20260101", ["19991231"], True),
        ("DA", "20260101-", ["19991231"], False),
        ("DA", "2026.01.01-2026.01.31", ["20260115"], True),
        ("TM", "1000-1100", ["103015.5"], True),
        ("TM", "1000-1100", ["110000"], True),
        ("TM", "1000-1100", ["110059.9"], True),  # a bound to the minute takes the minute
        ("TM", "1000-1100", ["110100"], False),
        ("TM", "10:30", ["103000"], True),
        ("IS", "7", ["07"], True),
        ("DS", "1.50", ["1.5"], True),
        ("PN", "", [], True),  # universal
        ("PN", "*", [], True),
        ("LO", "x", [], False),  # an absent value matches no specific value
    ],
)
def test_matching(vr: str, query: str, values: list[str], expected: bool) -> None:
    assert Condition("Key", vr, query).matches(values) is expected


@pytest.mark.parametrize(
    ("vr", "query", "hint"),
    [
        ("UI", "1.2\\1.3", ("in", ["1.2", "1.3"])),
        ("DA", "20260101-", ("range", ["20260101", ""])),
        ("DA", "-20260101", ("range", ["", "20260101"])),
        ("LO", "AB*_%", ("like", ["AB%\\_\\%"])),
        ("PN", "Doe*", None),  # names are matched folded, not by SQL
        ("TM", "1000-1100", None),
        ("IS", "7", None),
        ("LO", "A*\\B*", None),
    ],
)
def test_the_sql_hint_never_narrows_more_than_matching(
    vr: str, query: str, hint: tuple[str, list[str]] | None
) -> None:
    assert Condition("Key", vr, query).sql_hint() == hint


@pytest.mark.parametrize(
    ("query", "prefix"),
    [
        ("MÜLLER^H*", "muller h"),
        ("Doe^Jane", "doe jane"),
        ("O'Br?en*", "o br"),
        ("*jane", None),
        ("Doe\\Roe", None),
    ],
)
def test_a_names_folded_prefix_is_what_every_match_starts_with(
    query: str, prefix: str | None
) -> None:
    assert Condition("PatientName", "PN", query).folded_prefix() == prefix
