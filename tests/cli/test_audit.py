"""``store-server audit``: the trail of what happened to a patient's instances, as an auditor
reads it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.query.conftest import stored, study
from tests.support.cli import store_server
from tests.support.server import ServerUnderTest, StartServer


def audit(server: ServerUnderTest, *arguments: str) -> list[dict[str, Any]]:
    environment = {**os.environ, "STORE_SERVER_DATA_DIR": str(server.settings.data_dir)}
    shown = store_server("audit", "--json", *arguments, env=environment)
    assert shown.returncode == 0, shown.stderr
    events: list[dict[str, Any]] = json.loads(shown.stdout)
    return events


def test_the_trail_of_a_patients_instances(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    stored(server, study(tmp_path, "a", 1, 2, patient="Müller^Hans", AccessionNumber="ACC-1"))
    stored(server, study(tmp_path, "b", 1, 1, patient="Doe^Jane", AccessionNumber="ACC-2"))
    everything = audit(server)
    kinds = [event["event"] for event in everything]
    assert kinds.count("filed") == 3 and kinds.count("indexed") == 3
    assert [e["at"] for e in everything] == sorted(e["at"] for e in everything)  # oldest first
    muller = audit(server, "--patient", "muller")
    assert {e["event"] for e in muller} >= {"filed", "indexed"}
    assert len([e for e in muller if e["event"] == "filed"]) == 2
    assert len({e["study_instance_uid"] for e in muller}) == 1
    assert audit(server, "--event", "filed", "--limit", "1")[0]["event"] == "filed"
    assert audit(server, "--since", "2999-01-01") == []
    bad = store_server(
        "audit",
        "--since",
        "yesterday",
        env={**os.environ, "STORE_SERVER_DATA_DIR": str(server.settings.data_dir)},
    )
    assert bad.returncode != 0 and "--since: not a date" in bad.stderr
