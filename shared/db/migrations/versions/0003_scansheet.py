"""scan sheets: the study monitor's state on each study, and MPPS steps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        for name in ("announced_for", "announced_at", "sheet_written_for", "sheet_written_at"):
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "mpps_steps",
        sa.Column("step_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("study_instance_uids", _JSON, nullable=False),
        sa.Column("referenced_sop_instance_uids", _JSON, nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("step_uid", name=op.f("pk_mpps_steps")),
    )
    with op.batch_alter_table("mpps_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mpps_steps_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mpps_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mpps_steps_status"))
    op.drop_table("mpps_steps")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        for name in ("sheet_written_at", "sheet_written_for", "announced_at", "announced_for"):
            batch_op.drop_column(name)
