"""re-filing: the study moves under way

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_moves",
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("from_account", sa.String(length=128), nullable=False),
        sa.Column("from_folder", sa.Text(), nullable=False),
        sa.Column("to_account", sa.String(length=128), nullable=False),
        sa.Column("to_folder", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("study_instance_uid", name=op.f("pk_study_moves")),
    )


def downgrade() -> None:
    op.drop_table("study_moves")
