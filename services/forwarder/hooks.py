"""The hooks: site commands run once a study's sheet is written (``study.ready``), as DCMTK's
``--exec-on-eostudy`` does, but durably: the message is retried on the bus while a hook fails
(a non-zero exit, its time limit, a command that cannot start), and dead-lettered with the
reason after ``bus.max_attempts``.

Each hook runs once per sheet: its success is recorded in the audit trail with the sheet's
moment, and a redelivery runs only what has not yet succeeded. The command gets the study
folder as its last argument and the study's JSON on its standard input, never a shell; its
exit code and the end of its output go to the log and the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from services.forwarder.settings import Hook
from shared.bus import Retry
from shared.db.audit import Action, AuditEvent, history, record
from shared.db.studies import study_detail
from shared.log import get_logger
from shared.messages import StudyReady

log = get_logger(__name__)

OUTPUT_KEPT = 4000  # characters of a hook's output kept in the log and the audit trail


async def run_hooks(
    hooks: list[Hook], message: StudyReady, engine: AsyncEngine, accounts_root: Path
) -> None:
    uid = message.study_instance_uid
    sheet_for = message.sheet_for.isoformat() if message.sheet_for else ""
    wanted = [h for h in hooks if not h.accounts or message.account in h.accounts]
    if not wanted:
        return
    async with engine.connect() as connection:
        ran = await history(connection, study_instance_uid=uid, action=Action.HOOK_RAN)
        done = {
            event.detail.get("hook")
            for event in ran
            if event.detail.get("exit_code") == 0 and event.detail.get("sheet_for") == sheet_for
        }
        if all(hook.name in done for hook in wanted):
            return  # announced again for a sheet whose hooks have run
        detail = await study_detail(connection, uid)
    study = json.dumps(detail.as_json() if detail else {"study_instance_uid": uid}).encode()
    folder = accounts_root / message.folder
    failed: list[str] = []
    for hook in wanted:
        if hook.name in done:
            continue
        code, output = await _run(hook, folder, study, uid)
        event = AuditEvent(
            Action.HOOK_RAN,
            "forwarder",
            study_instance_uid=uid,
            detail={"hook": hook.name, "exit_code": code, "output": output, "sheet_for": sheet_for},
        )
        async with engine.begin() as connection:
            await record(connection, [event])
        fields = {"hook": hook.name, "study_instance_uid": uid, "exit_code": code, "output": output}
        if code == 0:
            log.info("hook.succeeded", **fields)
        else:
            log.warning("hook.failed", **fields)
            failed.append(f"{hook.name} ({'timed out' if code is None else f'exit {code}'})")
    if failed:
        raise Retry(f"hooks failed: {', '.join(failed)}")


async def _run(hook: Hook, folder: Path, study: bytes, uid: str) -> tuple[int | None, str]:
    """Run one hook; its exit code (None: killed at its time limit) and the end of its output."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "STORE_SERVER_STUDY_UID": uid,
        "STORE_SERVER_STUDY_FOLDER": str(folder),
    }
    try:
        process = await asyncio.create_subprocess_exec(
            *hook.command,
            str(folder),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            cwd=folder,
        )
    except OSError as error:  # the command, or the study folder, is not there
        return 127, f"cannot start {hook.command[0]} in {folder}: {error.strerror or error}"
    try:
        async with asyncio.timeout(hook.timeout):
            output, _ = await process.communicate(study)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        text = output.decode("utf-8", "replace")[-OUTPUT_KEPT:]
        return None, f"{text}\nkilled after {hook.timeout:g} s".strip()
    return process.returncode, output.decode("utf-8", "replace")[-OUTPUT_KEPT:]
