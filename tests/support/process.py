"""A store-server command run as its own process, as an administrator would start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.services import wait_for_port


def run(
    command: Sequence[str],
    *,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """A command run to its end, its output captured as text: every tool a test runs (the
    ``store-server`` command, DCMTK, dicom3tools, Chromium) goes through here."""
    return subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        env={**os.environ, **(env or {})},
    )


def run_together(
    commands: Sequence[Sequence[str]],
    *,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """Commands started at once and each run to its end (modalities sending together,
    processes racing), their output (stdout and stderr together, in order) captured as
    text, in the order given."""
    started = [Background(command, env=env) for command in commands]
    return [process.finish(timeout) for process in started]


class Background:
    """A command started and left running (a sender a test kills its receiver under). Its
    output goes to a file, not a pipe: a chatty command (``storescu -v``) would stall once a
    pipe's buffer filled, until someone read it."""

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        # Closed by finish(): the file outlives this call, as the process does.
        self._output = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.process = subprocess.Popen(
            list(command),
            stdout=self._output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def finish(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait for its end; its exit code and everything it printed."""
        code = self.process.wait(timeout)
        self._output.seek(0)
        output = self._output.read()
        self._output.close()
        return subprocess.CompletedProcess(self.process.args, code, output, "")


class ServerProcess:
    """``store-server <command> ...`` in a subprocess; killed at exit if still running."""

    def __init__(
        self,
        command: list[str],
        *,
        port: int | None,
        log_path: Path,
        environment: dict[str, str] | None = None,
    ) -> None:
        self._command = command
        self._port = port
        self._log_path = log_path
        self._environment = {**os.environ, **(environment or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        executable = Path(sys.executable).with_name("store-server")
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [str(executable), *self._command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._environment,
        )
        log.close()
        if self._port is not None:
            try:
                wait_for_port(self._port, within=30)
            except OSError:
                self.kill()
                raise AssertionError(f"store-server did not listen:\n{self.output}") from None
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def output(self) -> str:
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM killer does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def terminate(self, within: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.kill()


def wait_until(condition: object, within: float = 30, message: str = "") -> None:
    """Poll ``condition()`` until true; fail with ``message`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {message}")
        time.sleep(0.02)
