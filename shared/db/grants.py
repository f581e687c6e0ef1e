"""The read-only role the receiver's queries use on PostgreSQL.

The receiver faces the network; it should not hold a password that can change the index.
``store-server db upgrade`` makes the role named by ``database.query_role`` (or sets its
password again), lets it connect and read every table of the index, including the tables later
migrations add (default privileges of the migrating role), and nothing else. SQLite has no
roles: the receiver opens its file read-only instead (``shared.db.reader``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.log import get_logger

log = get_logger(__name__)


async def grant_query_role(engine: AsyncEngine, role: str, password: str) -> bool:
    """Make ``role`` a login role that can only read the index; False on SQLite.

    The role name and password are held to plain characters by the settings; they are
    quoted here all the same, since DDL takes no bound parameters.
    """
    if engine.dialect.name != "postgresql":
        return False
    name = '"' + role.replace('"', '""') + '"'
    secret = "'" + password.replace("'", "''") + "'"
    async with engine.begin() as connection:
        exists = await connection.scalar(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
        )
        verb = "ALTER" if exists else "CREATE"
        await connection.execute(
            sa.text(
                f"{verb} ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"PASSWORD {secret}"
            )
        )
        database = await connection.scalar(sa.text("SELECT current_database()"))
        quoted = '"' + str(database).replace('"', '""') + '"'
        for statement in (
            f"GRANT CONNECT ON DATABASE {quoted} TO {name}",
            f"GRANT USAGE ON SCHEMA public TO {name}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {name}",
        ):
            await connection.execute(sa.text(statement))
    log.info("database.query_role_granted", role=role, created=not exists)
    return True
