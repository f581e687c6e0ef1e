"""patients keyed on a digest of the whole Patient ID and issuer; folded search text; the
received time whose values each patient, study and series row holds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from shared.folding import fold

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_patients = sa.table(
    "patients",
    sa.column("id", sa.Integer),
    sa.column("patient_id", sa.Text),
    sa.column("issuer", sa.Text),
    sa.column("name", sa.Text),
    sa.column("identity", sa.String),
    sa.column("search_text", sa.Text),
)


def _identity(patient_id: str, issuer: str) -> str:
    # As services.indexer.header.patient_identity computes it, frozen here.
    return hashlib.sha256(f"{patient_id}\x00{issuer}".encode("utf-8", "replace")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("attributes_from", sa.DateTime(timezone=True)))
        batch_op.drop_constraint("uq_patients_patient_id_issuer", type_="unique")
        batch_op.alter_column(
            "patient_id", existing_type=sa.String(length=64), type_=sa.Text(), nullable=False
        )
        batch_op.alter_column(
            "issuer",
            existing_type=sa.String(length=64),
            type_=sa.Text(),
            existing_server_default="",
            nullable=False,
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_patients.c.id, _patients.c.patient_id, _patients.c.issuer, _patients.c.name)
    ).all()
    for row in rows:
        connection.execute(
            _patients.update()
            .where(_patients.c.id == row.id)
            .values(
                identity=_identity(row.patient_id, row.issuer),
                search_text=fold(f"{row.name or ''} {row.patient_id}"),
            )
        )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.alter_column("identity", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_patients_identity"), ["identity"])
    for table in ("studies", "series"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("attributes_from", sa.DateTime(timezone=True)))


def downgrade() -> None:
    for table in ("series", "studies"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("attributes_from")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_patients_identity"), type_="unique")
        batch_op.drop_column("attributes_from")
        batch_op.drop_column("search_text")
        batch_op.drop_column("identity")
        batch_op.alter_column(
            "patient_id", existing_type=sa.Text(), type_=sa.String(length=64), nullable=False
        )
        batch_op.alter_column(
            "issuer", existing_type=sa.Text(), type_=sa.String(length=64), nullable=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_patients_patient_id_issuer"), ["patient_id", "issuer"]
        )
