"""folder names unique by their case-folded key; file names unique within their series folder

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (table, the column that scopes a name, the name's column)
_BINDINGS = (
    ("study_bindings", "account", "study_folder"),
    ("series_bindings", "study_instance_uid", "series_folder"),
)


def _key(name: str) -> str:
    # As services.router.naming.folder_key computes it, frozen here.
    return unicodedata.normalize("NFC", name).casefold()


def upgrade() -> None:
    connection = op.get_bind()
    for table_name, scope, name in _BINDINGS:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("folder_key", sa.Text(), nullable=True))
        table = sa.table(
            table_name,
            sa.column(scope, sa.Text),
            sa.column(name, sa.Text),
            sa.column("folder_key", sa.Text),
        )
        taken: set[tuple[str, str]] = set()
        rows = connection.execute(
            sa.select(table.c[scope], table.c[name]).order_by(table.c[scope], table.c[name])
        ).all()
        for row in rows:
            key, extra = _key(row[1]), 1
            # Folders already alike but for case keep their names; their keys stay unique.
            while (row[0], key if extra == 1 else f"{key}#{extra}") in taken:
                extra += 1
            unique = key if extra == 1 else f"{key}#{extra}"
            taken.add((row[0], unique))
            connection.execute(
                table.update()
                .where(table.c[scope] == row[0], table.c[name] == row[1])
                .values(folder_key=unique)
            )
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column("folder_key", existing_type=sa.Text(), nullable=False)
            batch_op.create_unique_constraint(
                batch_op.f(f"uq_{table_name}_{scope}_folder_key"), [scope, "folder_key"]
            )
    with op.batch_alter_table("placements", schema=None) as batch_op:
        batch_op.drop_constraint("uq_placements_path", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_placements_series_instance_uid_path"), ["series_instance_uid", "path"]
        )


def downgrade() -> None:
    with op.batch_alter_table("placements", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_placements_series_instance_uid_path"), type_="unique"
        )
        batch_op.create_unique_constraint(batch_op.f("uq_placements_path"), ["path"])
    for table_name, scope, _ in reversed(_BINDINGS):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"uq_{table_name}_{scope}_folder_key"), type_="unique"
            )
            batch_op.drop_column("folder_key")
