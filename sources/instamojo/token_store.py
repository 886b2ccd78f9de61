"""Where each merchant's refresh token lives between runs.

A JSON file (default `.dlt/instamojo.tokens.json`, git-ignored), mode 0600, replaced atomically
on every write (temp file in the same folder, fsync, rename, fsync the folder), so a crash at any
instant leaves either the old file or the new one: a rotated refresh token is never lost. A
sidecar lock serialises writers (a sync and `make authorize` may run at the same time).

It holds, per merchant: the refresh token, the scopes the merchant granted, when it was written,
and `config_fingerprint`: a fingerprint of the token configured for the merchant
(`.dlt/secrets.toml` or an environment variable) when the entry was written. A configured token
with another fingerprint is one the user set since, so it wins over the stored one; the same
fingerprint means the stored token is newer (rotated by the API, or from `make authorize`).
Access tokens are never stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

DEFAULT_TOKEN_STORE = Path(".dlt") / "instamojo.tokens.json"
_FORMAT_VERSION = 1


def fingerprint(token: str) -> str:
    """A short, one-way fingerprint of a token: safe to store and compare, useless to an attacker."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredTokens:
    """One merchant's entry. `repr` never shows the token."""

    refresh_token: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    updated_at: str = ""
    config_fingerprint: str | None = None  # see the module docstring

    def to_json(self) -> dict:
        return {
            "refresh_token": self.refresh_token,
            "scopes": list(self.scopes),
            "updated_at": self.updated_at,
            "config_fingerprint": self.config_fingerprint,
        }

    @classmethod
    def from_json(cls, data: dict) -> "StoredTokens":
        return cls(
            refresh_token=data["refresh_token"],
            scopes=tuple(data.get("scopes") or ()),
            updated_at=data.get("updated_at", ""),
            config_fingerprint=data.get("config_fingerprint"),
        )


def choose_refresh_token(
    merchant: str, configured: str | None, store: "TokenStore"
) -> tuple[str, str | None] | None:
    """The refresh token to use for `merchant` and the configured token's fingerprint (None when
    the stored token is the one to use), or None when there is no token at all."""
    entry = store.get(merchant)
    if configured:
        fp = fingerprint(configured)
        if entry is None or entry.config_fingerprint != fp:
            return configured, fp
    if entry is not None:
        return entry.refresh_token, None
    return None


class TokenStoreError(RuntimeError):
    """The token store file is unreadable or malformed."""


class TokenStore:
    """Per-merchant refresh tokens in one JSON file, written atomically with mode 0600."""

    def __init__(self, path: str | os.PathLike = DEFAULT_TOKEN_STORE) -> None:
        self.path = Path(path)

    def get(self, merchant: str) -> StoredTokens | None:
        """The merchant's stored tokens, or None."""
        entry = self._read().get(merchant)
        return StoredTokens.from_json(entry) if entry else None

    def merchants(self) -> dict[str, StoredTokens]:
        """Every stored merchant (tokens hidden from repr)."""
        return {name: StoredTokens.from_json(e) for name, e in sorted(self._read().items())}

    def put(
        self,
        merchant: str,
        refresh_token: str,
        scopes: tuple[str, ...] | list[str] | None = None,
        *,
        config_fingerprint: str | None = None,
    ) -> StoredTokens:
        """Store (replace) a merchant's refresh token atomically; returns the new entry.

        `scopes=None` keeps the scopes already stored; `config_fingerprint=None` keeps the stored
        one. Writers pass `fingerprint(configured_token)` when a token is configured for the
        merchant, so the entry is known to supersede it (see the module docstring).
        """
        with self._locked():
            data = self._read()
            old = data.get(merchant) or {}
            entry = StoredTokens(
                refresh_token=refresh_token,
                scopes=tuple(scopes) if scopes is not None else tuple(old.get("scopes") or ()),
                updated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                config_fingerprint=config_fingerprint if config_fingerprint is not None else old.get("config_fingerprint"),
            )
            data[merchant] = entry.to_json()
            self._write(data)
            return entry

    def remove(self, merchant: str) -> bool:
        """Forget a merchant's tokens locally; True if there was an entry."""
        with self._locked():
            data = self._read()
            if merchant not in data:
                return False
            del data[merchant]
            self._write(data)
            return True

    # -- file handling -------------------------------------------------------------------------

    def _read(self) -> dict[str, dict]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            merchants = doc["merchants"]
            if not isinstance(merchants, dict):
                raise TypeError("'merchants' is not an object")
            return merchants
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenStoreError(
                f"token store {self.path} is not valid ({exc.__class__.__name__}: {exc}); "
                "fix or delete it and re-authorize the merchants with `make authorize`"
            ) from None

    def _write(self, merchants: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": _FORMAT_VERSION, "merchants": merchants}, indent=2, sort_keys=True)
        # mkstemp creates the file with mode 0600 before any secret is written to it
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
