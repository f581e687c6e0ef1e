"""Quarantine: where a file that cannot be read or routed goes, with the reason beside it.

Nothing is deleted: ``<quarantine>/<name>`` keeps the bytes and ``<name>.reason.json`` says
what was wrong, who sent it and when, so an administrator can fix and re-send it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.files import atomic_move, atomic_write_bytes
from shared.log import get_logger

log = get_logger(__name__)


def quarantine(source: Path, quarantine_dir: Path, reason: str, **context: Any) -> Path:
    """Move ``source`` into quarantine (atomically) and write its reason file; return the path."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_dir / f"{stamp}-{source.name}"
    details = {
        "reason": reason,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "original_name": source.name,
        **{key: str(value) for key, value in context.items()},
    }
    reason_file = target.with_name(target.name + ".reason.json")
    # The reason first: a crash between the two leaves an explained gap, not an unexplained file.
    atomic_write_bytes(reason_file, json.dumps(details, indent=2, ensure_ascii=False).encode())
    atomic_move(source, target)
    log.warning("instance.quarantined", path=str(target), **details)
    return target
