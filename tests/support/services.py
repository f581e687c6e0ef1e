"""Real RabbitMQ and PostgreSQL for tests: reachability, and per-test isolation.

CI sets ``STORE_SERVER_TEST_REQUIRE_SERVICES=1``: there a missing service fails the test
instead of skipping it, so a green run always means the real-service tier ran.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.engine import async_url

AMQP_URL = os.environ.get("STORE_SERVER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "STORE_SERVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRED = os.environ.get("STORE_SERVER_TEST_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Fail when CI requires the service, skip otherwise."""
    if REQUIRED:
        pytest.fail(f"required for this run: {reason}")
    pytest.skip(reason)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


# The Debian package each command-line tool the tests run comes in.
TOOL_PACKAGES = {
    **dict.fromkeys(("storescu", "storescp", "echoscu", "dcmdump", "dcmsend"), "dcmtk"),
    "Orthanc": "orthanc",
    "dciodvfy": "dicom3tools",
    "chromium": "chromium",
    **dict.fromkeys(("pdfinfo", "pdftotext"), "poppler-utils"),
    "openssl": "openssl",
    "docker-compose": "docker-compose",
    "systemd-analyze": "systemd",
    "logrotate": "logrotate",
}


def require_tool(name: str, package: str | None = None) -> str:
    """The path of the tool ``name``; skip (or fail, in CI) naming the package to install."""
    path = shutil.which(name)
    if path is None:
        wanted = package or TOOL_PACKAGES.get(name, name)
        unavailable(f"{name} is not installed (apt-get install {wanted})")
    assert path is not None
    return path


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run(coroutine: object) -> object:
    """Run a coroutine from synchronous fixture code."""
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def wait_for_port(port: int, host: str = "127.0.0.1", within: float = 10.0) -> None:
    """Return once something accepts connections on ``port``."""
    import time

    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_tcp_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample(name: str) -> Path:
    """A file of pydicom's bundled test data (or pydicom-data), never downloaded."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    assert isinstance(found, str), f"{name} is not in the installed test data"
    return Path(found)


async def drop_role(url: str, role: str) -> None:
    """Drop a PostgreSQL role a test made, with what it was granted in ``url``'s database."""
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        await connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
        await connection.execute(sa.text(f'DROP ROLE "{role}"'))
    await engine.dispose()
