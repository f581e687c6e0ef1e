"""Toolkit fixtures: test images, required external tools, and a real DCMTK storescp peer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

# DCMTK waits for delayed ACKs (about 40 ms a message) unless told not to.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def require_tool(name: str) -> str:
    """The tool's path; a missing tool fails under CI (STORE_SERVER_TEST_REQUIRE_SERVICES=1)."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (apt: dcmtk / dicom3tools)"
        if os.environ.get("STORE_SERVER_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def sample_file(name: str) -> Path:
    """A file of pydicom's test data or of pydicom-data, resolved locally."""
    found = get_testdata_file(name, download=False)
    assert found is not None, f"{name} is not in the installed test data"
    return Path(found)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class StoreSCP:
    """A running storescp: where it listens and where it writes what it receives."""

    port: int
    received: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.received.iterdir() if p.is_file())


@pytest.fixture
def start_storescp(tmp_path: Path) -> Iterator[Callable[..., StoreSCP]]:
    """Start storescp with extra options (e.g. ``+xa``); every one is killed at teardown."""
    executable = require_tool("storescp")
    running: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> StoreSCP:
        port = unused_port()
        received = tmp_path / f"storescp-{port}"
        received.mkdir()
        process = subprocess.Popen(
            [executable, "--output-directory", str(received), *options, str(port)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert process.poll() is None, "storescp exited at start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return StoreSCP(port, received)
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"storescp did not listen on {port}")

    yield start
    for process in running:
        process.kill()
        process.wait(timeout=10)
