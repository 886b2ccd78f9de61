"""Which Instamojo account a merchant's token belongs to, and that one account has one name.

A merchant's name here is the operator's choice (`make authorize MERCHANT=acme`); the account
that approved the app is Instamojo's fact (`account_id` from `/v2/user-contact/`, else the
`username` from `/v2/user-info/`). Two names for one account would load the same payments twice
and every total would count them twice; an account that changes behind a name would mix two
businesses' books. So the account is recorded with the token when it is authorized and in the
merchant's state at its first sync, and checked on every sync before anything of it is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InstamojoError


class IdentityError(InstamojoError):
    """A token belongs to another account than the one recorded, or to an account already synced
    under another name: the merchant is stopped before anything of it is loaded."""


@dataclass(frozen=True)
class Account:
    """An Instamojo account: its id (when the merchant granted user-contact:read) and username."""

    id: str | None
    username: str | None

    @property
    def key(self) -> str:
        """What identifies the account: its id, else its username."""
        return f"id:{self.id}" if self.id else f"username:{(self.username or '').lower()}"

    def describe(self) -> str:
        if self.username and self.id:
            return f"{self.username} (account {self.id})"
        return self.username or f"account {self.id}"

    def same_as(self, other: Account) -> bool:
        if self.id and other.id:
            return self.id == other.id
        return bool(self.username and other.username and self.username.lower() == other.username.lower())

    def to_state(self) -> dict[str, str | None]:
        return {"id": self.id, "username": self.username}

    @classmethod
    def from_state(cls, data: Mapping[str, Any] | None) -> Account | None:
        if not data or not (data.get("id") or data.get("username")):
            return None
        return cls(data.get("id"), data.get("username"))

    @classmethod
    def from_profile(cls, user_info: Mapping[str, Any] | None, user_contact: Mapping[str, Any] | None) -> Account | None:
        """From the merchant's `/v2/user-info/` and `/v2/user-contact/` objects (None when neither
        says who it is)."""
        account_id = (user_contact or {}).get("account_id")
        username = (user_contact or {}).get("username") or (user_info or {}).get("username")
        if not account_id and not username:
            return None
        return cls(str(account_id) if account_id else None, str(username) if username else None)


class AccountRegistry:
    """Which name each account is synced under, across the merchants of a run (thread-safe)."""

    def __init__(self, known: Mapping[str, Account] | None = None) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # account key → merchant name
        self._accounts: dict[str, Account] = {}
        for merchant, account in (known or {}).items():
            self._names.setdefault(account.key, merchant)
            self._accounts[merchant] = account

    def claim(self, merchant: str, account: Account) -> None:
        """Record that `merchant` is `account`; `IdentityError` if another name already is."""
        with self._lock:
            keys = {account.key} | ({f"username:{account.username.lower()}"} if account.username else set())
            for other_merchant, other in self._accounts.items():
                if other_merchant != merchant and other.same_as(account):
                    raise IdentityError(
                        f"this token belongs to the Instamojo account {account.describe()}, which is already "
                        f"synced as merchant {other_merchant!r}; one account must have one name, or its payments "
                        f"would be counted twice. Keep {other_merchant!r} (and remove this name: `python -m "
                        f"pipelines revoke-local {merchant}`, or take it out of the configuration), or, if "
                        f"{other_merchant!r} is the wrong name, revoke that one instead.",
                        merchant=merchant,
                    )
            for key in keys:
                self._names.setdefault(key, merchant)
            self._accounts[merchant] = account


def check_same_account(merchant: str, expected: Account | None, found: Account) -> None:
    """`IdentityError` when the token now belongs to another account than the one recorded."""
    if expected is not None and not expected.same_as(found) and (
            (expected.id and found.id) or (expected.username and found.username)):
        raise IdentityError(
            f"the token now belongs to the Instamojo account {found.describe()}, but this merchant was "
            f"authorized by {expected.describe()}; nothing of it was loaded. If the merchant really changed "
            f"accounts, authorize it again (`make authorize MERCHANT={merchant}`) so the new account is "
            "recorded; otherwise the configured token is another merchant's: fix it in .dlt/secrets.toml.",
            merchant=merchant,
        )
