"""Toolkit fixtures: test images, required external tools, and a real DCMTK storescp peer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
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
    """Start storescp with extra options (e.g. ``+xa``); every one is stopped at teardown."""
    with ExitStack() as running:

        def start(*options: str) -> StoreSCP:
            received = tmp_path / f"storescp-{len(list(tmp_path.glob('storescp-*')))}"
            received.mkdir()
            port = running.enter_context(dcmtk.storescp(received, *options))
            return StoreSCP(port, received)

        yield start
