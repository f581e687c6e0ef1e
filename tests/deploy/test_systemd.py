"""The systemd units of a bare-metal install: valid as systemd reads them, started at boot,
restarted on failure, hardened, and each running the role its name says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.settings import load_settings
from tests.support.deploy import ROOT, SYSTEMD, read_unit
from tests.support.process import run
from tests.support.services import require_tool

ROLES = ("receiver", "router", "indexer", "scansheet", "forwarder")
UNITS = {
    "receiver": "store-server-receiver.service",
    "router": "store-server-router@.service",
    "indexer": "store-server-indexer.service",
    "scansheet": "store-server-scansheet.service",
    "forwarder": "store-server-forwarder.service",
}
CONFIG = "/etc/store-server/store-server.toml"
EXECUTABLE = "/opt/store-server/bin/store-server"


def verify(root: Path, *units: str) -> tuple[int, str]:
    """``systemd-analyze verify`` over ``units`` installed in ``root``, as on a host where
    the package is installed at /opt/store-server; its exit code and what it printed."""
    tool = require_tool("systemd-analyze")
    completed = run([tool, "verify", f"--root={root}", *units], timeout=60)
    return completed.returncode, (completed.stdout + completed.stderr).strip()


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A root with the system's own units, ours in /etc/systemd/system, and the command."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(SYSTEMD, root / "etc/systemd/system")
    command = root / EXECUTABLE.lstrip("/")
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    return root


def test_every_unit_passes_systemd_analyze_verify(host: Path) -> None:
    units = sorted(path.name for path in SYSTEMD.iterdir())
    instances = [name.replace("@.", "@1.") for name in units]  # a template verifies as one
    assert verify(host, *instances) == (0, "")


def test_the_verifier_catches_a_mistake(host: Path) -> None:
    """The check above could fail: a misspelt directive, or a command that is not there."""
    unit = host / "etc/systemd/system" / UNITS["indexer"]
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSytem="))
    code, said = verify(host, UNITS["indexer"])
    assert "Unknown key 'ProtectSytem'" in said
    (host / EXECUTABLE.lstrip("/")).unlink()
    code, said = verify(host, UNITS["receiver"])
    assert code != 0
    assert f"Command {EXECUTABLE} is not executable" in said


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_unprivileged_hardened_and_comes_back(role: str) -> None:
    unit = read_unit(SYSTEMD / UNITS[role])
    service = unit["Service"]
    assert service["ExecStart"] == [f"{EXECUTABLE} {role} --config {CONFIG}"]
    assert f"STORE_SERVER_ROLE={role}" in service["Environment"]  # what `health` checks
    assert service["User"] == service["Group"] == ["store-server"]
    assert service["Restart"] == ["on-failure"]
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]  # never gives up restarting
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert service[key] == [value], key
    assert service["ReadWritePaths"] == ["/var/lib/store-server /var/log/store-server"]
    assert service["EnvironmentFile"] == ["/etc/store-server/environment"]
    assert unit["Install"]["WantedBy"] == ["store-server.target"]
    assert "PartOf" in unit["Unit"]
    if role == "receiver":
        # The one privilege anything holds: binding port 104 as a user.
        assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    else:
        assert "AmbientCapabilities" not in service
        assert service["CapabilityBoundingSet"] == [""]
        assert "store-server-migrate.service" in unit["Unit"]["After"][0].split()


def test_routers_are_a_template_told_apart_by_instance() -> None:
    unit = read_unit(SYSTEMD / UNITS["router"])
    assert "STORE_SERVER_INSTANCE=%i" in unit["Service"]["Environment"]
    assert unit["Install"]["DefaultInstance"] == ["1"]


def test_the_target_starts_at_boot_with_the_migration_first() -> None:
    target = read_unit(SYSTEMD / "store-server.target")
    assert target["Install"]["WantedBy"] == ["multi-user.target"]
    wanted = set(target["Unit"]["Wants"][0].split())
    assert wanted == {
        "store-server-migrate.service",
        *(UNITS[role] for role in ROLES if role != "router"),
    }
    migrate = read_unit(SYSTEMD / "store-server-migrate.service")["Service"]
    assert migrate["Type"] == ["oneshot"]
    assert migrate["ExecStart"] == [f"{EXECUTABLE} db upgrade --config {CONFIG}"]


def test_the_installed_settings_file_is_one_the_server_accepts() -> None:
    """The file the units name, as the install steps copy it: every key known, port 104."""
    settings = load_settings(ROOT / "deploy" / "store-server.toml")
    assert settings.receiver.port == 104
    assert str(settings.data_dir) == "/var/lib/store-server"
    assert str(settings.log_file) == "/var/log/store-server/store-server.log"
    secrets = (ROOT / "deploy" / "environment.example").read_text().splitlines()
    assert {line.partition("=")[0] for line in secrets if line and line[0] != "#"} == {
        "STORE_SERVER_BUS__URL",
        "STORE_SERVER_DATABASE__URL",
    }
