"""Querying a server as a workstation would: DCMTK's findscu, its responses read back."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from tests.support.dcmtk import ENVIRONMENT
from tests.support.process import run
from tests.support.services import require_tool

_FINAL = re.compile(
    r"Final Find Response: \d+ \(([^)]*)\)|Received Final Find Response \(([^)]*)\)"
)


@dataclass(frozen=True)
class Found:
    """What findscu received: the pending responses' identifiers and the final status."""

    matches: list[Dataset]
    final: str  # as findscu names it: "Success", "Cancel", "Failed: ..."
    output: str

    def values(self, keyword: str) -> list[str]:
        return sorted(str(m.get(keyword, "")) for m in self.matches)


def findscu(
    port: int,
    keys: Sequence[str],
    *,
    model: str = "-S",
    calling_ae: str = "FINDSCU",
    options: Sequence[str] = (),
) -> Found:
    """Send one C-FIND with ``keys`` (findscu's ``-k`` syntax) and read every response."""
    with tempfile.TemporaryDirectory() as output:
        command = [require_tool("findscu"), "-v", model, "-aet", calling_ae, "-aec", "STORE_SERVER"]
        command += ["-X", "-od", output, *options]
        for key in keys:
            command += ["-k", key]
        completed = run([*command, "127.0.0.1", str(port)], timeout=60, env=ENVIRONMENT)
        text = completed.stdout + completed.stderr
        responses = sorted(Path(output).glob("rsp*.dcm"))
        matches: list[Dataset] = [pydicom.dcmread(path) for path in responses]
    found = _FINAL.search(text)
    final = next(g for g in found.groups() if g) if found else "none"
    return Found(matches, final, text)


_MOVE_FINAL = re.compile(r"Received Final Move Response \(([^)]*)\)")


@dataclass(frozen=True)
class Moved:
    final: str  # as movescu names it: "Success", "Warning", "Failed: ..."
    output: str


def movescu(
    port: int,
    keys: Sequence[str],
    destination: str,
    *,
    model: str = "-S",
    calling_ae: str = "MOVESCU",
) -> Moved:
    """Ask the server to move what ``keys`` name to ``destination`` (an AE title)."""
    command = [require_tool("movescu"), "-v", model, "-aet", calling_ae, "-aec", "STORE_SERVER"]
    command += ["-aem", destination]
    for key in keys:
        command += ["-k", key]
    completed = run([*command, "127.0.0.1", str(port)], timeout=120, env=ENVIRONMENT)
    text = completed.stdout + completed.stderr
    found = _MOVE_FINAL.search(text)
    return Moved(found.group(1) if found else "none", text)


_GET_RESPONSE = re.compile(r"Received C-GET Response \(([^)]*)\)")


def getscu(
    port: int,
    keys: Sequence[str],
    output: Path,
    *,
    model: str = "-S",
    options: Sequence[str] = (),
) -> Moved:
    """Retrieve what ``keys`` name on the same association into ``output``."""
    command = [require_tool("getscu"), "-v", model, "-aet", "GETSCU", "-aec", "STORE_SERVER"]
    command += ["-od", str(output), *options]
    for key in keys:
        command += ["-k", key]
    completed = run([*command, "127.0.0.1", str(port)], timeout=120, env=ENVIRONMENT)
    text = completed.stdout + completed.stderr
    statuses = [s for s in _GET_RESPONSE.findall(text) if s != "Pending"]
    return Moved(statuses[-1] if statuses else "none", text)
