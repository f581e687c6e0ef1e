"""The receiver's refusals and other audit events, written to the audit trail.

The receiver runs without a database, so each C-STORE it refuses (what it told the sender and
why) reaches the trail as an ``instance.refused`` message, and its other events (associations,
transfers, queries, retrievals, security alerts, its start and stop) as ``audit.reported``
messages, which the router records as it records the receiver's ``received`` rows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.audit import Action, AuditEvent, record
from shared.log import get_logger
from shared.messages import AuditReported, InstanceRefused

log = get_logger("services.router")


async def record_refusals(engine: AsyncEngine, refusals: list[InstanceRefused]) -> None:
    """One ``refused`` row per refusal, all in one transaction; a redelivered message adds a
    second, harmlessly."""
    async with engine.begin() as connection:
        await record(
            connection,
            [
                AuditEvent(
                    Action.REFUSED,
                    "receiver",
                    refused.sop_instance_uid or None,
                    None,
                    {
                        "status": f"0x{refused.status:04X}",
                        "reason": refused.reason,
                        "quarantined": refused.quarantined,
                        "sop_class_uid": refused.sop_class_uid,
                        "calling_ae": refused.calling_ae,
                        "called_ae": refused.called_ae,
                        "peer_address": refused.peer_address,
                    },
                    at=refused.received_at,
                )
                for refused in refusals
            ],
        )
    for refused in refusals:
        log.info(
            "instance.refusal_audited",
            sop_instance_uid=refused.sop_instance_uid,
            status=f"0x{refused.status:04X}",
        )


async def record_reports(engine: AsyncEngine, reports: list[AuditReported]) -> None:
    """One row per reported event, all in one transaction; a redelivered message adds a
    second, harmlessly."""
    async with engine.begin() as connection:
        await record(
            connection,
            [
                AuditEvent(
                    Action(report.action),
                    report.service,
                    report.sop_instance_uid,
                    report.study_instance_uid,
                    report.detail,
                    at=report.at,
                )
                for report in reports
            ],
        )
    log.debug("audit.reports_recorded", count=len(reports))
