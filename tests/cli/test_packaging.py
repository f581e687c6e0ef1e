"""What installing the package and asking for its version show."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.cli import store_server
from tests.support.process import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_installing_prints_no_licence_warning() -> None:
    # --dry-run still builds the metadata, which is where setuptools judges the licence field.
    completed = run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--dry-run", "-e", str(ROOT)],
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "licen" not in output.lower(), output


def test_version_flag_prints_the_installed_version() -> None:
    completed = store_server("--version")
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == f"store-server {version('store-server')}\n"
