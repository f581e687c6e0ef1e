"""The last-resort net of the console command: a bug is one line, unless debugging."""

from __future__ import annotations

import argparse

import pytest

from services.cli import main as cli
from services.cli import tags


def broken(args: argparse.Namespace) -> int:
    raise RuntimeError("boom")


def test_an_unexpected_error_is_one_line_and_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STORE_SERVER_DEBUG", raising=False)
    monkeypatch.setattr(tags, "run_tags", broken)
    assert cli.main(["tags", "any.dcm"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "store-server tags: unexpected error: RuntimeError: boom "
        "(set STORE_SERVER_DEBUG=1 for the traceback)\n"
    )
    assert captured.out == ""


def test_debugging_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STORE_SERVER_DEBUG", "1")
    monkeypatch.setattr(tags, "run_tags", broken)
    assert cli.main(["tags", "any.dcm"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Traceback (most recent call last):")
    assert "in broken" in error and error.rstrip().endswith("RuntimeError: boom")
