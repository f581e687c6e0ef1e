"""The filing chain: which account a new study goes to, and where an account's home is.

First match wins: the requesting physician's account (the first of several values that has
one), the referring physician's account, ``Guest/<physician>`` (requesting first, else
referring) when a physician is named without an account, ``Unknown`` when nobody is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.router.accounts import GUEST, UNKNOWN, Account, Directory
from services.router.naming import person_name


@dataclass(frozen=True)
class Choice:
    account: str
    why: str


def choose_account(directory: Directory, requesting: list[str], referring: list[str]) -> Choice:
    for role, values in (("requesting", requesting), ("referring", referring)):
        for value in values:
            account = directory.find(value)
            if account is not None:
                return Choice(account.name, f"{role} physician {value!r}")
    for role, values in (("requesting", requesting), ("referring", referring)):
        if values:
            folder = person_name(values[0]) or "UNNAMED"
            return Choice(f"{GUEST}/{folder}", f"{role} physician {values[0]!r} has no account")
    return Choice(UNKNOWN, "no physician named")


@dataclass(frozen=True)
class Home:
    """Where an account's studies are filed, and who should own them."""

    path: Path
    owner_uid: int | None = None
    owner_gid: int | None = None


def home_of(account: str, known: dict[str, Account], accounts_root: Path) -> Home:
    """The home of a bound account name (a real account, ``Guest/<name>`` or ``Unknown``)."""
    found = known.get(account)
    if found is not None:
        return Home(found.home_under(accounts_root), found.owner_uid, found.owner_gid)
    # Guest/<name>, Unknown, or an account removed after its studies were bound to it.
    return Home(accounts_root / account)


def indexed_path(accounts_root: Path, target: Path) -> str:
    """A filed file's path as messages and the index give it: relative to the (resolved)
    accounts root, or absolute for an account whose home lies elsewhere."""
    return str(target.relative_to(accounts_root) if accounts_root in target.parents else target)
