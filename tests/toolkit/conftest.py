"""Toolkit fixtures: test images, required external tools, and a real DCMTK storescp peer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import dcmtk, services

# One home for the helpers every tier uses; kept under these names for the toolkit's tests.
DCMTK_ENV = dcmtk.ENVIRONMENT
require_tool = services.require_tool
sample_file = services.sample
unused_port = services.free_tcp_port


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
        try:
            services.wait_for_port(port)
        except OSError:
            pytest.fail(f"storescp did not listen on {port} (exit code {process.poll()})")
        return StoreSCP(port, received)

    yield start
    for process in running:
        process.kill()
        process.wait(timeout=10)
