"""queries: patients found by ID and by the start of their folded name

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_patients_patient_id"), "patients", ["patient_id"])
    # A prefix LIKE uses a b-tree on PostgreSQL only with the pattern operator class.
    op.create_index(
        "ix_patients_search_text",
        "patients",
        ["search_text"],
        postgresql_ops={"search_text": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_patients_search_text", table_name="patients")
    op.drop_index(op.f("ix_patients_patient_id"), table_name="patients")
