"""The header the index stores is the DICOM JSON model pydicom would give, element for
element, over every file in pydicom's test data, its character set files and pydicom-data
(made faster, not different)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_charset_files, get_testdata_files

from shared.dicom.header import HeaderReadError, read_header
from shared.dicom.json_model import header_json

# Values pydicom's validation refuses and leaves out, which the index keeps (they are what the
# modality sent): over-long values of short-text VRs; and sequences pydicom reads but does not
# encode, such as the Referenced RT Plan Sequence of its RT Dose files.
OVER_LONG = {"bad_sequence.dcm": {"00200010", "0020000D", "0020000E", "00080018"}}


def corpus() -> list[Path]:
    return sorted(
        Path(p)
        for p in [*get_testdata_files(), *get_charset_files()]
        if Path(p).is_file() and Path(p).suffix not in {".txt", ".json", ".dump", ".gz", ".icc"}
    )


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    if isinstance(ours, float) and isinstance(theirs, float):
        return math.isclose(ours, theirs) or (math.isnan(ours) and math.isnan(theirs))
    if isinstance(ours, int | float) or isinstance(theirs, int | float):
        # An IS stays an integer, a DS a float: JSON readers see the difference.
        return ours == theirs and isinstance(ours, int) == isinstance(theirs, int)
    return bool(ours == theirs)  # pydicom's VR and UID are str subclasses


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_the_header_json_is_pydicoms(source: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            theirs_from = read_header(source)
        except HeaderReadError:
            pytest.skip("not a readable DICOM file")
        try:
            theirs = theirs_from.to_json_dict(1024, lambda _: "", suppress_invalid_tags=True)
        except Exception as error:  # pydicom cannot give one at all: ours is still made
            theirs = None
            reason = f"{type(error).__name__}"
        ours = header_json(read_header(source), 1024)
    if theirs is None:
        assert ours, reason
        return
    for key, element in theirs.items():
        assert key in ours, f"{key} missing"
        assert same(ours[key], element), f"{key}: {ours[key]} != {element}"
    for key in ours.keys() - theirs.keys():
        assert ours[key]["vr"] == "SQ" or key in OVER_LONG.get(source.name, set()), key
