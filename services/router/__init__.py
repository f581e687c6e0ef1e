"""The router: files each received instance into its physician's account, and re-files.

What the composition (``services.app``, ``services.cli``, ``services.settings``) may use.
"""

from services.router.accounts import (
    AccountError,
    add_account,
    add_alias,
    list_accounts,
    remove_account,
)
from services.router.refile import Refiled, RefileError, Refiling
from services.router.service import Router
from services.router.settings import AccountSeed, RouterSettings

__all__ = [
    "AccountError",
    "AccountSeed",
    "RefileError",
    "Refiled",
    "Refiling",
    "Router",
    "RouterSettings",
    "add_account",
    "add_alias",
    "list_accounts",
    "remove_account",
]
