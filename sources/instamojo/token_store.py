"""Where each merchant's refresh token lives between runs.

A folder (default `.dlt/tokens/`, git-ignored, mode 0700) with one JSON file per merchant
(`<merchant>.json`, mode 0600), each replaced atomically on every write (temp file in the same
folder, fsync, rename, fsync the folder), so a crash at any instant leaves either the old file or
the new one: a rotated refresh token is never lost. One file per merchant keeps a write's cost
independent of how many merchants there are (a run of a thousand merchants that all rotate their
tokens writes a thousand small files, not a thousand copies of one big one). A lock per merchant
serialises writers of the same merchant (a sync and `make authorize` may run at the same time).

Each file holds: the refresh token, the scopes the merchant granted, when it was written, the
Instamojo account that approved it (`account_id`, `account_username`), and `config_fingerprint`:
a fingerprint of the token configured for the merchant (`.dlt/secrets.toml` or an environment
variable) when the entry was written. A configured token with another fingerprint is one the user
set since, so it wins over the stored one; the same fingerprint means the stored token is newer
(rotated by the API, or from `make authorize`). Access tokens are never stored.

Earlier versions kept every merchant in one file (`.dlt/instamojo.tokens.json`); its entries are
moved into the folder on first use, and the old file is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .names import MerchantNameError, check_merchant_name

DEFAULT_TOKEN_STORE = Path(".dlt") / "tokens"
LEGACY_FILE_NAME = "instamojo.tokens.json"
STATUS_DIR = ".status"  # per merchant: since when its refresh token is refused (mark_refused)
FORGOTTEN_DIR = ".forgotten"  # merchants erased with `make forget` (see TokenStore.mark_forgotten)
_FORMAT_VERSION = 2
_migrated: set[Path] = set()
_migrate_lock = threading.Lock()


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
    account_id: str | None = None  # the Instamojo account that approved the app
    account_username: str | None = None

    def to_json(self) -> dict:
        return {
            "refresh_token": self.refresh_token,
            "scopes": list(self.scopes),
            "updated_at": self.updated_at,
            "config_fingerprint": self.config_fingerprint,
            "account_id": self.account_id,
            "account_username": self.account_username,
        }

    @classmethod
    def from_json(cls, data: dict) -> StoredTokens:
        return cls(
            refresh_token=data["refresh_token"],
            scopes=tuple(data.get("scopes") or ()),
            updated_at=data.get("updated_at", ""),
            config_fingerprint=data.get("config_fingerprint"),
            account_id=data.get("account_id"),
            account_username=data.get("account_username"),
        )


def choose_refresh_token(
    merchant: str, configured: str | None, store: TokenStore
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
    """The token store is unreadable, malformed or not writable; the message names the file."""


_KEEP = object()


class TokenStore:
    """Per-merchant refresh tokens, one JSON file each, written atomically with mode 0600.

    `path` is the folder; a path ending in `.json` (an earlier version's single file) means the
    folder of the same name without the suffix, and that file's entries are moved into it."""

    def __init__(self, path: str | os.PathLike = DEFAULT_TOKEN_STORE) -> None:
        given = Path(path)
        self.path = given.with_suffix("") if given.suffix == ".json" else given
        # where an earlier version's single file may be: `<folder>.json`, or its default name
        self.legacy_files = list(dict.fromkeys([self.path.with_suffix(".json"), self.path.parent / LEGACY_FILE_NAME]))

    def file_of(self, merchant: str) -> Path:
        """The file holding `merchant`'s entry (the name is checked first: it names a file)."""
        try:
            check_merchant_name(merchant, f"the token store {self.path}")
        except MerchantNameError as exc:
            raise TokenStoreError(str(exc)) from None
        return self.path / f"{merchant}.json"

    def get(self, merchant: str) -> StoredTokens | None:
        """The merchant's stored tokens, or None."""
        self._migrate()
        return self._read(self.file_of(merchant))

    def merchants(self) -> dict[str, StoredTokens]:
        """Every stored merchant (tokens hidden from repr)."""
        self._migrate()
        if not self.path.is_dir():
            return {}
        found = {}
        for file in sorted(self.path.glob("*.json")):
            self.file_of(file.stem)  # a file dropped in by hand must still be a usable name
            entry = self._read(file)
            if entry is not None:
                found[file.stem] = entry
        return found

    def put(
        self,
        merchant: str,
        refresh_token: str,
        scopes: tuple[str, ...] | list[str] | None = None,
        *,
        config_fingerprint: str | None = None,
        account_id: object = _KEEP,
        account_username: object = _KEEP,
    ) -> StoredTokens:
        """Store (replace) a merchant's refresh token atomically; returns the new entry.

        `scopes=None` keeps the scopes already stored; `config_fingerprint=None` keeps the stored
        one; the account is kept unless given. Writers pass `fingerprint(configured_token)` when a
        token is configured for the merchant, so the entry is known to supersede it (see the
        module docstring).
        """
        self._migrate()
        file = self.file_of(merchant)
        with self._locked(merchant):
            old = self._read(file)
            entry = StoredTokens(
                refresh_token=refresh_token,
                scopes=tuple(scopes) if scopes is not None else (old.scopes if old else ()),
                updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
                config_fingerprint=config_fingerprint if config_fingerprint is not None
                else (old.config_fingerprint if old else None),
                account_id=(old.account_id if old else None) if account_id is _KEEP else account_id,  # type: ignore[arg-type]
                account_username=(old.account_username if old else None) if account_username is _KEEP
                else account_username,  # type: ignore[arg-type]
            )
            self._write(file, {"version": _FORMAT_VERSION, "merchant": merchant, **entry.to_json()})
            return entry

    def remove(self, merchant: str) -> bool:
        """Forget a merchant's tokens locally; True if there was an entry."""
        self._migrate()
        file = self.file_of(merchant)
        with self._locked(merchant):
            try:
                file.unlink()
            except FileNotFoundError:
                return False
            self._fsync_dir()
            return True

    # -- merchants erased with `make forget` ---------------------------------------------------

    def _forgotten_file(self, merchant: str) -> Path:
        return self.path / FORGOTTEN_DIR / self.file_of(merchant).name

    def mark_forgotten(self, merchant: str, config_fingerprint: str | None) -> None:
        """Record that `merchant` was erased (`make forget`): a sync skips it until it is
        re-authorized (a token stored again, or another token configured than the one
        fingerprinted here). Written before anything is erased, so a forget cut short still
        keeps the merchant from being synced again."""
        file = self._forgotten_file(merchant)
        with self._locked(merchant):
            (self.path / FORGOTTEN_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
            old = self._read_doc(file) or {}
            self._write(file, {"merchant": merchant, "forgotten_at": old.get("forgotten_at")
                               or datetime.now(UTC).isoformat(timespec="seconds"),
                               "config_fingerprint": config_fingerprint})

    def forgotten(self, merchant: str, configured: str | None = None) -> str | None:
        """When `merchant` was forgotten, if it still is: not re-authorized since (no token stored
        again, and no other token configured than at the forget). None otherwise."""
        doc = self._read_doc(self._forgotten_file(merchant))
        if not doc:
            return None
        if self.get(merchant) is not None:
            return None  # `make authorize` stored a token since
        if configured and fingerprint(configured) != doc.get("config_fingerprint"):
            return None  # a new token configured by hand
        return str(doc.get("forgotten_at") or "")

    def clear_forgotten(self, merchant: str) -> None:
        """The merchant was re-authorized: it is synced like any other."""
        self._forgotten_file(merchant).unlink(missing_ok=True)

    # -- a refresh token Instamojo refuses (revoked, expired) -----------------------------------

    def _status_file(self, merchant: str) -> Path:
        return self.path / STATUS_DIR / self.file_of(merchant).name

    def mark_refused(self, merchant: str) -> str:
        """Record that the token endpoint refused the merchant's refresh token (invalid_grant),
        keeping the first time it did; returns that time (UTC ISO-8601)."""
        file = self._status_file(merchant)
        with self._locked(merchant):
            old = self._read_doc(file) or {}
            since = old.get("refused_since") or datetime.now(UTC).isoformat(timespec="seconds")
            if not old.get("refused_since"):
                (self.path / STATUS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
                self._write(file, {"merchant": merchant, "refused_since": since})
            return str(since)

    def refused_since(self, merchant: str) -> str | None:
        """Since when the merchant's refresh token has been refused, if it still is."""
        doc = self._read_doc(self._status_file(merchant))
        return str(doc["refused_since"]) if doc and doc.get("refused_since") else None

    def clear_refused(self, merchant: str) -> None:
        """A refresh succeeded (or the merchant was forgotten): no longer refused."""
        file = self._status_file(merchant)
        if file.exists():
            file.unlink(missing_ok=True)

    def _read_doc(self, file: Path) -> dict | None:
        try:
            doc = json.loads(file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TokenStoreError(f"token store file {file} cannot be read ({exc})") from None
        return doc if isinstance(doc, dict) else None

    def check_writable(self) -> None:
        """Prove that a rotated refresh token could be written, before any is spent: create the
        folder if needed, write, fsync and remove a probe file. Raises `TokenStoreError` naming
        the folder and what the system said."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=self.path)
            try:
                os.write(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise TokenStoreError(
                f"the token store {self.path} is not writable ({exc.strerror or exc}): a refresh token that "
                "Instamojo rotates could not be saved and would be lost, so no token was used. Make the "
                "folder writable, or set sources.instamojo.token_store_path to a writable folder."
            ) from None

    # -- file handling -------------------------------------------------------------------------

    def _read(self, file: Path) -> StoredTokens | None:
        try:
            raw = file.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(f"token store file {file} cannot be read ({exc.strerror or exc})") from None
        try:
            return StoredTokens.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenStoreError(
                f"token store file {file} is not valid ({exc.__class__.__name__}: {exc}); delete it and "
                f"re-authorize that merchant with `make authorize MERCHANT={file.stem}`"
            ) from None

    def _write(self, file: Path, doc: dict) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps(doc, indent=2, sort_keys=True)
        # mkstemp creates the file with mode 0600 before any secret is written to it
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=self.path)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        locks = self.path / ".locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _migrate(self) -> None:
        """Move an earlier version's single-file store into the folder, once."""
        key = self.path.resolve()
        if key in _migrated:
            return
        with _migrate_lock:
            if key not in _migrated:
                for legacy in self.legacy_files:
                    if legacy.is_file():
                        self._migrate_file(legacy)
                _migrated.add(key)

    def _migrate_file(self, legacy: Path) -> None:
        try:
            doc = json.loads(legacy.read_text())
            entries = doc["merchants"]
            if not isinstance(entries, dict):
                raise TypeError("'merchants' is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenStoreError(
                f"token store {legacy} (an earlier version's) is not valid ({exc.__class__.__name__}: {exc}); "
                "fix or delete it and re-authorize the merchants with `make authorize`"
            ) from None
        for merchant, data in entries.items():
            file = self.file_of(merchant)
            with self._locked(merchant):
                if not file.exists():  # an entry already in the folder is the newer one
                    entry = StoredTokens.from_json(data)
                    self._write(file, {"version": _FORMAT_VERSION, "merchant": merchant, **entry.to_json()})
        legacy.unlink()
        legacy.with_name(legacy.name + ".lock").unlink(missing_ok=True)
