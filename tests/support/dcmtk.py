"""DCMTK's command-line peers (storescu, echoscu, storescp), run as real modalities would."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import require_tool

# Without it DCMTK waits for Nagle's algorithm on every message (about 40 ms each).
ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}
_RESPONSE = re.compile(r"Received Store Response \(([^)]*)\)")


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str

    @property
    def store_statuses(self) -> list[str]:
        """The status of each C-STORE response, as storescu names it ("Success", ...)."""
        return _RESPONSE.findall(self.output)

    @property
    def rejected(self) -> bool:
        return "Association Rejected" in self.output


def storescu(
    port: int,
    paths: Sequence[Path],
    *,
    called_ae: str = "STORE_SERVER",
    calling_ae: str = "STORESCU",
    options: Sequence[str] = (),
    timeout: float = 300,
) -> Outcome:
    """Send files as a modality would: one association, each file in its own syntax."""
    command = [
        require_tool("storescu"),
        "-v",
        "-aet",
        calling_ae,
        "-aec",
        called_ae,
        *options,
        "127.0.0.1",
        str(port),
        *map(str, paths),
    ]
    return _run(command, timeout)


def echoscu(
    port: int,
    *,
    called_ae: str = "STORE_SERVER",
    calling_ae: str = "ECHOSCU",
    options: Sequence[str] = (),
) -> Outcome:
    command = [
        require_tool("echoscu"),
        "-v",
        "-aet",
        calling_ae,
        "-aec",
        called_ae,
        *options,
        "127.0.0.1",
        str(port),
    ]
    return _run(command, 60)


def _run(command: list[str], timeout: float) -> Outcome:
    completed = subprocess.run(
        command,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(completed.returncode, completed.stdout + completed.stderr)


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a DICOM file, without preamble and file meta."""
    from pydicom.filereader import _read_file_meta_info as read_meta
    from pydicom.filereader import read_preamble

    with path.open("rb") as handle:
        read_preamble(handle, False)
        read_meta(handle)
        return handle.read()
