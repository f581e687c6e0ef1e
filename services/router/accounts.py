"""Accounts: who owns a study, found by the physician names each account answers to.

Accounts live in the database (``accounts``, ``physician_names``) and are managed with
``store-server accounts``. ``Guest/<name>`` and ``Unknown`` are not accounts in the table:
they are where the filing chain ends when no account answers, so those names are reserved.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.router.naming import folder_key, safe_component
from services.router.physicians import match_keys
from services.router.settings import AccountSeed
from shared.db.audit import Action, AuditEvent, record
from shared.db.schema import accounts, physician_names

GUEST = "Guest"
UNKNOWN = "Unknown"
RESERVED = {GUEST.casefold(), UNKNOWN.casefold()}


class AccountError(ValueError):
    """An account operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Account:
    name: str
    home: Path | None = None
    owner_uid: int | None = None
    owner_gid: int | None = None
    physicians: tuple[str, ...] = field(default_factory=tuple)

    def home_under(self, accounts_root: Path) -> Path:
        return self.home if self.home is not None else accounts_root / self.name


def check_name(name: str) -> str:
    if safe_component(name, "").rstrip("_") != name or "." in name:
        raise AccountError(
            f"account name {name!r} must be letters, digits, '-', '_', '+', ',', '(' or ')'"
        )
    if safe_component(name, "") != name:
        raise AccountError(f"account name {name!r} names a device on Windows shares")
    if name.casefold() in RESERVED:
        raise AccountError(f"{name!r} is reserved for studies that no account claims")
    return name


def _keys(physician: str) -> list[str]:
    keys = match_keys(physician)
    if not keys:
        raise AccountError(f"physician name {physician!r} has neither family nor given name")
    return keys


async def add_account(
    connection: AsyncConnection,
    name: str,
    physicians: list[str],
    *,
    home: Path | None = None,
    owner_uid: int | None = None,
    owner_gid: int | None = None,
    change: str = "added",
) -> Account:
    check_name(name)
    for known in await connection.scalars(sa.select(accounts.c.name)):
        # Two homes alike but for case are one folder on a Windows share.
        if folder_key(known) == folder_key(name):
            raise AccountError(f"account {known!r} exists already")
    account_id = await connection.scalar(
        accounts.insert()
        .values(
            name=name,
            home=str(home) if home else None,
            owner_uid=owner_uid,
            owner_gid=owner_gid,
            created_at=datetime.now(UTC),
        )
        .returning(accounts.c.id)
    )
    for physician in physicians:
        await _add_physician(connection, int(account_id), physician)
    await _changed(connection, name, change, physicians, home=str(home) if home else None)
    return Account(name, home, owner_uid, owner_gid, tuple(physicians))


async def _add_physician(connection: AsyncConnection, account_id: int, physician: str) -> None:
    for key in _keys(physician):
        taken = await connection.scalar(
            sa.select(accounts.c.name)
            .join(physician_names, physician_names.c.account_id == accounts.c.id)
            .where(physician_names.c.match_key == key, accounts.c.id != account_id)
        )
        if taken is not None:
            raise AccountError(f"{physician!r} already answers to account {taken!r}")
        await connection.execute(
            physician_names.insert()
            .prefix_with("OR IGNORE", dialect="sqlite")
            .values(account_id=account_id, name=physician, match_key=key)
        )


async def add_alias(
    connection: AsyncConnection, name: str, physician: str, change: str = "alias_added"
) -> None:
    account_id = await connection.scalar(sa.select(accounts.c.id).where(accounts.c.name == name))
    if account_id is None:
        raise AccountError(f"no account {name!r}")
    await _add_physician(connection, int(account_id), physician)
    await _changed(connection, name, change, [physician])


async def remove_account(connection: AsyncConnection, name: str) -> None:
    account_id = await connection.scalar(sa.select(accounts.c.id).where(accounts.c.name == name))
    if account_id is None:
        raise AccountError(f"no account {name!r}")
    await connection.execute(
        physician_names.delete().where(physician_names.c.account_id == account_id)
    )
    await connection.execute(accounts.delete().where(accounts.c.id == account_id))
    await _changed(connection, name, "removed", [])


async def _changed(
    connection: AsyncConnection, name: str, change: str, physicians: list[str], **more: object
) -> None:
    """The change in the audit trail, in the transaction that makes it."""
    detail = {"account": name, "change": change, "physicians": physicians, "by": _user(), **more}
    await record(connection, [AuditEvent(Action.ACCOUNT_CHANGED, "accounts", detail=detail)])


def _user() -> str:
    """Who made the change: the operating-system user (a container may have no name for
    its user: then its number)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


async def list_accounts(connection: AsyncConnection) -> list[Account]:
    rows = (await connection.execute(sa.select(accounts).order_by(accounts.c.name))).mappings()
    names = (
        await connection.execute(
            sa.select(physician_names.c.account_id, physician_names.c.name).order_by(
                physician_names.c.id
            )
        )
    ).all()
    by_account: dict[int, list[str]] = {}
    for account_id, physician in names:
        listed = by_account.setdefault(account_id, [])
        if physician not in listed:
            listed.append(physician)
    return [
        Account(
            name=row["name"],
            home=Path(row["home"]) if row["home"] else None,
            owner_uid=row["owner_uid"],
            owner_gid=row["owner_gid"],
            physicians=tuple(by_account.get(row["id"], [])),
        )
        for row in rows
    ]


async def seed_accounts(connection: AsyncConnection, seeds: list[AccountSeed]) -> int:
    """Create the configured accounts that are missing and their missing aliases."""
    existing = {account.name: account for account in await list_accounts(connection)}
    created = 0
    for seed in seeds:
        if seed.name not in existing:
            await add_account(
                connection,
                seed.name,
                seed.physicians,
                home=seed.home,
                owner_uid=seed.owner_uid,
                owner_gid=seed.owner_gid,
                change="seeded",
            )
            created += 1
            continue
        for physician in seed.physicians:
            if physician not in existing[seed.name].physicians:
                await add_alias(connection, seed.name, physician, "seeded")
    return created


class Directory:
    """The accounts as the router sees them: a match key to account lookup."""

    def __init__(self, known: list[Account]) -> None:
        self._by_key: dict[str, Account] = {}
        for account in known:
            for physician in account.physicians:
                for key in match_keys(physician):
                    self._by_key.setdefault(key, account)

    def find(self, physician: str) -> Account | None:
        for key in match_keys(physician):
            if key in self._by_key:
                return self._by_key[key]
        return None


class AccountsCache:
    """The accounts, re-read from the database at most every ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._loaded_at = float("-inf")
        self._accounts: list[Account] = []

    async def get(self, connection: AsyncConnection) -> tuple[Directory, dict[str, Account]]:
        now = asyncio.get_running_loop().time()
        if now - self._loaded_at > self._ttl:
            self._accounts = await list_accounts(connection)
            self._loaded_at = now
        return Directory(self._accounts), {a.name: a for a in self._accounts}
