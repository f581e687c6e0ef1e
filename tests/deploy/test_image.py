"""The Dockerfile: what the image is built from, how it runs, and the package it installs.

There is no container engine here to build it; what can be checked without one is: every
file it copies is in the build context (not excluded by ``.dockerignore``), it agrees with
``docker-compose.yml`` on paths and ports, it runs unprivileged with a health check, and the
package installed as its build stage installs it (not editable, from those files alone)
carries what the server needs at run time: the index's migrations.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.deploy import ROOT
from tests.support.process import run

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def context_files() -> list[str]:
    """What ``COPY`` takes from the build context (not from another stage)."""
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            sources += rest.split()[:-1]
    return sources


def ignored(path: str) -> bool:
    """Whether ``.dockerignore`` leaves ``path`` out of the build context (last match wins)."""
    verdict = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            verdict = not negated
    return verdict


def test_every_file_the_image_copies_is_in_the_build_context() -> None:
    sources = context_files()
    assert {"requirements.lock", "pyproject.toml", "services", "shared"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is left out by .dockerignore"
    for local in (".venv", "data", ".git", "tests"):
        assert ignored(local), f"{local} would be sent to the build"


def test_the_image_runs_unprivileged_with_a_health_check_and_agrees_with_compose() -> None:
    found = instructions()
    assert sum(keyword == "FROM" for keyword, _ in found) == 2  # build stage, then runtime
    user = [rest for keyword, rest in found if keyword == "USER"]
    assert user == ["store-server"]
    [health] = [rest for keyword, rest in found if keyword == "HEALTHCHECK"]
    assert health.endswith('CMD ["store-server", "health"]')
    environment = " ".join(rest for keyword, rest in found if keyword == "ENV")
    assert "STORE_SERVER_DATA_DIR=/var/lib/store-server" in environment
    assert "STORE_SERVER_LOG__TO_FILE=false" in environment  # JSON lines on stdout
    [exposed] = [rest for keyword, rest in found if keyword == "EXPOSE"]
    assert "11112" in exposed.split()  # the container port compose publishes as 104
    [command] = [rest for keyword, rest in found if keyword == "CMD"]
    assert json.loads(command) == ["store-server", "run"]
    assert ("RUN", "/opt/store-server/bin/pip install --no-deps -r requirements.lock") in found


@pytest.mark.slow
def test_the_package_as_the_image_installs_it_carries_its_migrations(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in context_files():
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, context / source)
    target = tmp_path / "site"
    installed = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(context),
        ],
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    index = tmp_path / "index.sqlite"
    environment = {"PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    upgraded = run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "db",
            "upgrade",
            "--database",
            f"sqlite:///{index}",
        ],
        env=environment,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    current = run(
        [sys.executable, "-c", "import services; print(services.__file__)"],
        env=environment,
    )
    assert current.stdout.strip().startswith(str(target))  # the installed copy ran
    assert index.exists()
