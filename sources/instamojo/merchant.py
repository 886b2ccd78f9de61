"""One merchant's run: its refresh token, its access token, and its resource families in a fixed
order, each family's state replaced only when its listing finished.

The order is explicit because one family relies on another: payouts run before payments, so a
merchant's first run, whose payments listing reads everything, already sees every payout link
and the payout follow-ups can be skipped (see `resources/payouts.py`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from . import settings as s
from .auth import ClientCredentials, MerchantAuth
from .client import ApiClient, HttpClients
from .errors import AuthError, InstamojoError, redact
from .identity import Account, AccountRegistry, IdentityError, check_same_account
from .personal import KEEP_ALL, PersonalDataPolicy
from .resources.common import ListingOptions, MerchantContext, RunNotes
from .resources.orders import sync_orders
from .resources.payments import sync_payments
from .resources.payouts import sync_payouts
from .resources.products import sync_products
from .resources.profile import PROFILE_ENDPOINTS, emit_profile, read_profile
from .schema import Table
from .state import (
    FAMILIES,
    STATE_VERSION,
    MerchantState,
    cursor_of,
    family_state,
    fingerprint_of,
    iso,
    new_state,
)
from .token_store import TokenStore, choose_refresh_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MerchantSpec:
    """A merchant to sync: its name in this project and the refresh token configured for it (in
    secrets.toml or the environment), if any; otherwise the token store's is used."""

    name: str
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FetchOptions:
    """How the API is read for every merchant of a run."""

    base_url: str
    credentials: ClientCredentials
    resources: tuple[str, ...] = s.ALL_RESOURCES
    listing: ListingOptions = field(default_factory=ListingOptions)
    page_concurrency: int = s.DEFAULT_PAGE_CONCURRENCY
    page_size: int | None = s.DEFAULT_PAGE_SIZE
    # what happens to personal fields before a row leaves the source (personal.py)
    personal: PersonalDataPolicy = KEEP_ALL


class MerchantSync:
    """Syncs one merchant: `run()` emits its rows and returns its new state (None when nothing
    can be committed). Its failures never raise: they are noted in `notes.errors`, redacted."""

    def __init__(
        self,
        spec: MerchantSpec,
        state: MerchantState | None,
        *,
        options: FetchOptions,
        http: HttpClients,
        token_store: TokenStore,
        emit: Callable[[Table, pa.Table], None],
        registry: AccountRegistry | None = None,
    ) -> None:
        self.spec = spec
        self.merchant = spec.name
        self.state = copy.deepcopy(state) if state else new_state()
        self.options = options
        self.http = http
        self.token_store = token_store
        self.emit = emit
        self.registry = registry or AccountRegistry()
        self.notes = RunNotes(spec.name)

    def run(self) -> MerchantState | None:
        started = time.perf_counter()
        try:
            return self._run()
        except InstamojoError as exc:
            self.notes.errors.append(str(exc))
        except Exception as exc:  # a bug or an unexpected environment problem: still redacted
            log.exception("merchant %r: unexpected error", self.merchant)
            self.notes.errors.append(redact(f"merchant {self.merchant!r}: {exc.__class__.__name__}: {exc}"))
        finally:
            self.notes.seconds = time.perf_counter() - started
            self.notes.finished = True
        return self._committable()

    def _run(self) -> MerchantState | None:
        api = self._connect()
        wanted = self._wanted()
        ctx = MerchantContext(
            merchant=self.merchant, api=api, emit=self._emit, notes=self.notes,
            options=self.options.listing, synced_at=datetime.now(UTC), wanted=wanted,
        )
        # who this token belongs to, checked before anything of the merchant is loaded
        profile = self._identify(ctx)
        seen = self.state.setdefault("profile_seen", {})
        for name, endpoint in PROFILE_ENDPOINTS:
            doc = profile.get(name)
            if name in wanted and doc is not None:
                # loaded when it changed (or on a backfill): the same profile every hour is no news
                fingerprint = fingerprint_of(doc)
                if seen.get(name) != fingerprint or self.options.listing.backfill_from is not None:
                    emit_profile(ctx, endpoint, doc)
                    seen[name] = fingerprint
        # payouts before payments: see the module docstring
        families: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
            ("payouts", lambda st: sync_payouts(ctx, st, payments_cursor=cursor_of(self.state, "payments"))),
            ("payments", lambda st: sync_payments(ctx, st)),
            ("products", lambda st: sync_products(ctx, st)),
            ("orders", lambda st: sync_orders(ctx, st)),
        ]
        for family, sync in families:
            if family not in wanted:
                continue
            try:
                self.state[family] = sync(family_state(self.state, family))
                self.notes.committed[family] = True
            except (AuthError, IdentityError):
                raise  # the merchant's authorization is gone: nothing more can be read
            except InstamojoError as exc:
                # this family's state stays as it was (its cursor did not move); the others go on
                self.notes.errors.append(str(exc))
        return self._committable()

    def _identify(self, ctx: MerchantContext) -> dict[str, dict[str, Any] | None]:
        """Read the merchant's profile objects (when their scopes were granted) and check the
        account they name: the one recorded for this merchant, and no other merchant's."""
        profile: dict[str, dict[str, Any] | None] = {}
        for name, endpoint in PROFILE_ENDPOINTS:
            if not ctx.granted(endpoint.scope):
                continue
            profile[name] = read_profile(ctx, endpoint, name, skip=name in ctx.wanted)
        account = Account.from_profile(profile.get("user_info"), profile.get("user_contact"))
        if account is None:
            self.notes.warnings.append(
                "which Instamojo account this token belongs to is unknown (neither user-info:read nor "
                "user-contact:read was granted), so a second name for the same account would not be noticed")
            return profile
        stored = self.token_store.get(self.merchant)
        expected = Account.from_state(self.state.get("account")) or (
            Account(stored.account_id, stored.account_username) if stored and (stored.account_id or stored.account_username)
            else None)
        check_same_account(self.merchant, expected, account)
        self.registry.claim(self.merchant, account)
        self.state["account"] = account.to_state()
        self.notes.committed["account"] = True
        return profile

    def _connect(self) -> ApiClient:
        chosen = choose_refresh_token(self.merchant, self.spec.refresh_token, self.token_store)
        if chosen is None:
            raise AuthError(
                f"no refresh token: authorize the merchant with `make authorize MERCHANT={self.merchant}` "
                f"(stores it in {self.token_store.path}), or set sources.instamojo.refresh_tokens.{self.merchant} "
                "in .dlt/secrets.toml. To try everything against the local sandbox, run `make demo`.",
                merchant=self.merchant,
            )
        token, config_fingerprint = chosen
        auth = MerchantAuth(
            merchant=self.merchant,
            base_url=self.options.base_url,
            credentials=self.options.credentials,
            refresh_token=token,
            token_store=self.token_store,
            session_factory=lambda: self.http.token.session,
            config_fingerprint=config_fingerprint,
        )
        try:
            auth.access_token()  # fail fast, before any listing, when the token is refused
        except AuthError as exc:
            if exc.oauth_error == "invalid_grant":
                # revoked (the merchant removed the app), expired or rotated away: when this was
                # first seen tells the summary when `make forget` is due (revoked_grace_days)
                self.token_store.mark_refused(self.merchant)
            raise
        self.token_store.clear_refused(self.merchant)
        stored = self.token_store.get(self.merchant)
        self.notes.granted_scopes = auth.granted_scopes or (stored.scopes if stored and stored.scopes else None)
        api = ApiClient(
            merchant=self.merchant, base_url=self.options.base_url, auth=auth, http=self.http,
            page_concurrency=self.options.page_concurrency, page_size=self.options.page_size,
        )
        self.notes.requests_by_endpoint = api.requests_by_endpoint
        return api

    def _wanted(self) -> tuple[str, ...]:
        """The resources to read: those asked for, minus those whose scope was not granted."""
        wanted = []
        for name in self.options.resources:
            scope = s.RESOURCE_SCOPES[name]
            granted = self.notes.granted_scopes
            if granted is not None and scope not in granted:
                self.notes.skipped[name] = f"scope {scope} not granted"
                log.warning("merchant %r: skipping %s, the merchant did not grant scope %s", self.merchant, name, scope)
            else:
                wanted.append(name)
        return tuple(wanted)

    def _emit(self, table: Table, rows: pa.Table) -> None:
        # every table of the merchant leaves the source here: the one place personal fields are
        # pseudonymized or dropped, before dlt (load package, warehouse, logs) sees any of them
        if rows.num_rows:
            self.notes.rows_by_table[table.name] += rows.num_rows
            self.emit(table, self.options.personal.apply(table.name, rows))

    def _committable(self) -> MerchantState | None:
        """The state to commit: every family whose listing finished has its new part."""
        if not self.notes.committed:
            return None
        self.state["version"] = STATE_VERSION
        self.state["updated_at"] = iso(datetime.now(UTC))
        return self.state


def merchant_specs(names: Sequence[str], configured_tokens: dict[str, str]) -> list[MerchantSpec]:
    """Specs for `names`, each with its configured refresh token if there is one."""
    return [MerchantSpec(n, configured_tokens.get(n)) for n in names]


__all__ = ["FAMILIES", "FetchOptions", "MerchantSpec", "MerchantSync", "merchant_specs"]
