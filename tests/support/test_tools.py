"""A test that needs a missing tool says which Debian package to install."""

from __future__ import annotations

import shutil

import pytest

from tests.support import services


@pytest.mark.parametrize(
    ("tool", "package"),
    [
        ("chromium", "chromium"),
        ("pdfinfo", "poppler-utils"),
        ("pdftotext", "poppler-utils"),
        ("storescu", "dcmtk"),
        ("echoscu", "dcmtk"),
        ("storescp", "dcmtk"),
        ("dcmdump", "dcmtk"),
        ("dciodvfy", "dicom3tools"),
        ("openssl", "openssl"),
    ],
)
def test_a_missing_tool_names_its_package(
    tool: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(services, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        services.require_tool(tool)
    assert str(skipped.value) == f"{tool} is not installed (apt-get install {package})"
