"""The deployment files as their own tools read them: compose files rendered by
``docker-compose config``, systemd units parsed as systemd reads them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.services import require_tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_TLS = ROOT / "docker-compose.tls.yml"
SYSTEMD = ROOT / "deploy" / "systemd"
# What compose needs to render at all: the secrets that have no default.
SECRETS = {
    "RABBITMQ_PASSWORD": "broker-secret",
    "POSTGRES_PASSWORD": "index-secret",
    "POSTGRES_QUERY_PASSWORD": "query-secret",
}
# Variables the compose file reads, which a developer's shell must not set for the tests.
_COMPOSE_VARIABLES = (
    "RABBITMQ_HOST",
    "RABBITMQ_PORT",
    "RABBITMQ_USER",
    "RABBITMQ_PASSWORD",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_DB",
    "DICOM_PORT",
    "DICOM_TLS_PORT",
    "TLS_DIR",
    "AE_TITLE",
    "ALLOWED_CALLERS",
    "MIN_FREE_DISK_MB",
    "SCANSHEET_STABLE_AGE",
    "SCANSHEET_PAPER",
    "LOG_LEVEL",
    "STORE_SERVER_IMAGE",
)


class ComposeError(Exception):
    """``docker-compose config`` refused the file; the message is what it said."""


def render_compose(
    env_file: Path, variables: Mapping[str, str], *extra_files: Path
) -> dict[str, Any]:
    """The compose file(s) as ``docker-compose config`` validates and renders them, with
    ``variables`` written to ``env_file`` as a site's ``.env`` would hold them."""
    tool = require_tool("docker-compose")
    env_file.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    files = [arg for path in (COMPOSE, *extra_files) for arg in ("-f", str(path))]
    # The shell's variables beat the .env file in compose: the test's alone must count.
    environment = {k: v for k, v in os.environ.items() if k not in _COMPOSE_VARIABLES}
    completed = subprocess.run(
        [tool, "--project-directory", str(ROOT), "--env-file", str(env_file), *files, "config"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0:
        raise ComposeError(completed.stderr.strip())
    rendered: dict[str, Any] = yaml.safe_load(completed.stdout)
    return rendered


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: each section's keys with every value given, in order (systemd
    lets a key repeat, as ``Environment=`` does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections
