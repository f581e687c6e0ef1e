"""The ``store-server`` console command run as a user runs it: its own process, its output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.process import run

STORE_SERVER = str(Path(sys.executable).with_name("store-server"))
# Dropped to run a command as root without root's power to read any file.
_FILE_OVERRIDES = "-dac_override,-dac_read_search"


def store_server(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    unprivileged: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``store-server ARGUMENTS``; ``unprivileged`` makes file permissions apply as root."""
    command = [STORE_SERVER, *arguments]
    if unprivileged and os.geteuid() == 0:
        command = ["setpriv", f"--bounding-set={_FILE_OVERRIDES}", *command]
    return run(command, timeout=timeout, env=env)
