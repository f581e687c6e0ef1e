"""A site's command run once a study's sheet is written: the study folder as its argument, the
study's JSON on its standard input, retried through the bus when it fails, killed at its time
limit, and each run on the record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import DeadLetter
from shared.db import audit
from tests.conftest import Backend
from tests.query.conftest import stored, study
from tests.support.process import wait_until
from tests.support.server import StartServer

QUICK = {
    "scansheet": {"stable_age": 1.0, "poll_interval": 0.1, "thumbnail_workers": 1},
    "bus": {"retry_backoff": 0.2, "retry_backoff_max": 0.5, "max_attempts": 3},
}


async def hook_runs(engine: AsyncEngine) -> list[audit.AuditEvent]:
    async with engine.connect() as connection:
        return await audit.history(connection, action=audit.Action.HOOK_RAN)


def hook_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "hook.py"
    script.write_text(f"import json, pathlib, sys, time\n{body}\n")
    return script


def test_a_hook_that_fails_once_runs_again_and_then_never_twice(
    backend: Backend, start_server: StartServer, tmp_path: Path
) -> None:
    record = tmp_path / "ran.jsonl"
    script = hook_script(
        tmp_path,
        f"""
study = json.load(sys.stdin)
runs = pathlib.Path({str(record)!r})
first = not runs.exists()
with runs.open("a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "uid": study["study_instance_uid"],
                          "series": len(study["series"])}}) + "\\n")
print("seen", study["study_instance_uid"])
sys.exit(3 if first else 0)
""",
    )
    server = start_server(
        backend,
        forwarder={"hooks": [{"name": "archive-copy", "command": [sys.executable, str(script)]}]},
        **QUICK,
    )
    paths = study(tmp_path, "s", 2, 2, patient="Doe^Jane", AccessionNumber="ACC-H")
    stored(server, paths)
    wait_until(lambda: server.log_events("hook.succeeded"), 60, "the hook succeeded")
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 2  # failed once, then succeeded: and no more
    folder = server.settings.accounts_dir / "Guest/Smith_John/Doe_Jane_20261120_ACC-H"
    assert runs[0]["argv"] == [str(folder)]
    assert runs[0]["series"] == 2
    [failed] = server.log_events("hook.failed")
    # The output is on the record, and in the log at debug level only: it may hold anything.
    assert failed["exit_code"] == 3 and failed["output"].endswith("logged at debug level)")
    assert server.running is not None
    ran = [e.detail for e in server.call(hook_runs(server.running.index))]
    assert [r["exit_code"] for r in ran] == [3, 0]
    assert ran[0]["output"].startswith("seen 1.2.")
    assert all(r["hook"] == "archive-copy" for r in ran)


def test_a_hook_past_its_time_limit_is_killed_and_dead_lettered_with_the_reason(
    start_server: StartServer, tmp_path: Path
) -> None:
    script = hook_script(tmp_path, "time.sleep(60)")
    server = start_server(
        forwarder={
            "hooks": [{"name": "slow", "command": [sys.executable, str(script)], "timeout": 0.5}]
        },
        **QUICK,
    )
    stored(server, study(tmp_path, "s", 1, 1, patient="Doe^Jane", AccessionNumber="ACC-T"))
    assert server.running is not None

    def dead() -> list[DeadLetter]:
        assert server.running is not None
        return server.call(server.running.bus.dead_letters("forwarder"))

    wait_until(dead, 60, "dead-lettered after its attempts")
    [letter] = dead()
    assert "hooks failed: slow (timed out)" in letter.reason
    assert len(server.log_events("hook.failed")) == 3
    runs = server.call(hook_runs(server.running.index))
    assert [r.detail["exit_code"] for r in runs] == [None] * 3
    assert "killed after 0.5 s" in runs[0].detail["output"]
