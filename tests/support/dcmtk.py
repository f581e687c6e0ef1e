"""DCMTK's command-line peers (storescu, echoscu, storescp), run as real modalities would."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.process import run
from tests.support.services import free_tcp_port, require_tool, wait_for_port

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
    command = storescu_command(
        port, paths, called_ae=called_ae, calling_ae=calling_ae, options=options
    )
    return _run(command, timeout)


def storescu_command(
    port: int,
    paths: Sequence[Path],
    *,
    called_ae: str = "STORE_SERVER",
    calling_ae: str = "STORESCU",
    options: Sequence[str] = (),
) -> list[str]:
    """The ``storescu`` command line, for a sender run in the background or with others."""
    return [
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


def dcmdump(path: Path, *options: str) -> str:
    """What ``dcmdump`` prints of a file (it must read it)."""
    return run([require_tool("dcmdump"), *options, str(path)], env=ENVIRONMENT, check=True).stdout


def dciodvfy_errors(path: Path) -> list[str]:
    """The errors dicom3tools' ``dciodvfy`` finds in a file against its IOD."""
    report = run([require_tool("dciodvfy"), str(path)])
    return [
        line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")
    ]


@contextmanager
def storescp(output: Path, *options: str) -> Iterator[int]:
    """DCMTK's ``storescp`` writing what it receives into ``output``; yields its port."""
    with storescp_on(output, free_tcp_port(), *options) as port:
        yield port


@contextmanager
def storescp_on(output: Path, port: int, *options: str) -> Iterator[int]:
    """DCMTK's ``storescp`` on ``port`` (a destination configured before it was up)."""
    process = subprocess.Popen(
        [require_tool("storescp"), "--output-directory", str(output), *options, str(port)],
        env=ENVIRONMENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        try:
            wait_for_port(port)
        except OSError:
            raise AssertionError(f"storescp did not listen on {port} ({process.poll()})") from None
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


def _run(command: list[str], timeout: float) -> Outcome:
    completed = run(command, timeout=timeout, env=ENVIRONMENT)
    return Outcome(completed.returncode, completed.stdout + completed.stderr)


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a DICOM file, without preamble and file meta."""
    from pydicom.filereader import _read_file_meta_info as read_meta
    from pydicom.filereader import read_preamble

    with path.open("rb") as handle:
        read_preamble(handle, False)
        read_meta(handle)
        return handle.read()
