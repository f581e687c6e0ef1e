"""What installing the package shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_installing_prints_no_licence_warning() -> None:
    # --dry-run still builds the metadata, which is where setuptools judges the licence field.
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--dry-run", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "licen" not in output.lower(), output
