"""Studies made to order for the scan sheet, sent to a server, and the sheet they produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import CTImageStorage, generate_uid

from shared.dicom.net import send
from tests.router.conftest import make_instance, wait_for_filed
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest

# Small enough for a fast test, large enough for the monitor to see quiet periods.
FAST = {"stable_age": 1.5, "poll_interval": 0.1, "thumbnail_workers": 1}
SIDE = 64


def gradient(seed: int) -> bytes:
    """A picture with structure (a bright disc on a ramp), so a thumbnail is not blank."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    ramp = (x + y) * 8 + seed * 100
    disc = ((x - SIDE / 2) ** 2 + (y - SIDE / 2) ** 2 < (SIDE / 4 + seed) ** 2) * 1500
    picture: bytes = (ramp + disc).astype(np.uint16).tobytes()
    return picture


def mr_series_tags(number: int) -> dict[str, Any]:
    return {
        "SeriesNumber": number,
        "SeriesDescription": f"T{number} axial",
        "RepetitionTime": 500 + 100 * number,
        "EchoTime": 10 + number,
        "InversionTime": 900,
        "FlipAngle": 15 + number,
        "SliceThickness": 3,
        "SpacingBetweenSlices": 3.5,
        "PixelSpacing": [0.9, 0.9],
        "SequenceName": f"*tse{number}",
        "PatientAge": "045Y",
        "PatientWeight": 72.5,
    }


def make_study(
    folder: Path,
    study_uid: str,
    series: int,
    per_series: int,
    *,
    first_number: int = 1,
    **tags: Any,
) -> list[Path]:
    """``series`` MR series of ``per_series`` instances each, 64x64 pixels."""
    paths = []
    for number in range(first_number, first_number + series):
        series_uid = generate_uid()
        for instance in range(1, per_series + 1):
            values = {
                **mr_series_tags(number),
                "InstanceNumber": instance,
                "Rows": SIDE,
                "Columns": SIDE,
                "PixelData": gradient(number),
                **tags,
            }
            paths.append(
                make_instance(folder, study_uid=study_uid, series_uid=series_uid, tags=values)
            )
    return paths


def make_ct_instance(folder: Path, study_uid: str) -> Path:
    return make_instance(
        folder,
        study_uid=study_uid,
        tags={
            "SOPClassUID": str(CTImageStorage),
            "Modality": "CT",
            "SeriesNumber": 9,
            "SeriesDescription": "Head CT",
            "KVP": 120,
            "Exposure": 250,
            "ConvolutionKernel": "H30s",
            "SliceThickness": 5,
            "Rows": SIDE,
            "Columns": SIDE,
            "PixelData": gradient(2),
        },
    )


def send_all(server: ServerUnderTest, paths: list[Path]) -> None:
    summary = send("127.0.0.1", server.port, paths, called_aet="STORE_SERVER")
    assert summary.failed == 0, summary.results


def sheet_json_path(server: ServerUnderTest) -> Path | None:
    found = sorted(server.settings.accounts_dir.rglob("scansheet.json"))
    return found[0] if found else None


def wait_for_sheet(server: ServerUnderTest, within: float = 30, **expect: Any) -> dict[str, Any]:
    """The sheet's JSON once one exists whose study values include ``expect``."""
    seen: dict[str, Any] = {}

    def ready() -> bool:
        path = sheet_json_path(server)
        if path is None:
            return False
        seen.update(json.loads(path.read_text(encoding="utf-8")))
        return all(seen["study"].get(key) == value for key, value in expect.items())

    wait_until(ready, within, f"a scan sheet with {expect} (last seen: {seen.get('study')})")
    return seen


def written(server: ServerUnderTest) -> list[dict[str, Any]]:
    """The sheets the server wrote, from its log."""
    return server.log_events("scansheet.written")


__all__ = ["wait_for_filed"]
