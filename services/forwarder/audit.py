"""What a forward sent, for the audit trail: one ``exported`` event per destination and
patient of each settled batch, written in the transaction that marks the jobs done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.audit import Action, AuditEvent
from shared.db.schema import instances, patients, series, studies

SERVICE = "forwarder"
_CHUNK = 500  # UIDs in one IN (...) list


async def exported(
    connection: AsyncConnection,
    sent: Sequence[tuple[str, str]],
    calling_ae: str,
    addresses: dict[str, str],
) -> list[AuditEvent]:
    """The events for ``sent`` (destination AE title, SOP Instance UID), with each instance's
    patient and study as the index has them; ``addresses``: where each destination is."""
    facts: dict[str, dict[str, Any]] = {}
    uids = sorted({uid for _, uid in sent})
    for start in range(0, len(uids), _CHUNK):
        rows = await connection.execute(
            sa.select(
                instances.c.sop_instance_uid,
                instances.c.sop_class_uid,
                studies.c.study_instance_uid,
                patients.c.patient_id,
                patients.c.name,
            )
            .join(series, series.c.id == instances.c.series_fk)
            .join(studies, studies.c.id == series.c.study_fk)
            .outerjoin(patients, patients.c.id == studies.c.patient_fk)
            .where(instances.c.sop_instance_uid.in_(uids[start : start + _CHUNK]))
        )
        for row in rows.mappings():
            facts[row["sop_instance_uid"]] = dict(row)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for destination, uid in sent:
        found = facts.get(uid, {"sop_instance_uid": uid})
        groups.setdefault((destination, found.get("patient_id") or ""), []).append(found)
    return [
        _event(destination, patient_id, items, calling_ae, addresses.get(destination.upper(), ""))
        for (destination, patient_id), items in groups.items()
    ]


def _event(
    destination: str,
    patient_id: str,
    items: list[dict[str, Any]],
    calling_ae: str,
    address: str,
) -> AuditEvent:
    studies_sent: dict[str, list[dict[str, str]]] = {}
    for item in items:
        studies_sent.setdefault(item.get("study_instance_uid") or "", []).append(
            {
                "sop_class_uid": item.get("sop_class_uid") or "",
                "sop_instance_uid": item["sop_instance_uid"],
            }
        )
    detail = {
        "operation": "forward",
        "calling_ae": calling_ae,
        "destination": destination,
        "destination_address": address,
        "patient_id": patient_id,
        "patient_name": items[0].get("name") or "",
        "count": len(items),
        "failed": 0,
        "studies": [
            {"study_instance_uid": uid, "instances": sent} for uid, sent in studies_sent.items()
        ],
    }
    only = next(iter(studies_sent)) if len(studies_sent) == 1 else None
    return AuditEvent(Action.EXPORTED, SERVICE, None, only or None, detail)
