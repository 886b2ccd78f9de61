"""OAuth2 for one merchant: the refresh-token grant, access tokens kept fresh, rotation persisted.

dlt's `OAuth2ClientCredentials` covers the client-credentials grant only; Instamojo's merchant
access is the refresh-token grant with (optionally) rotating refresh tokens that must be stored
before the new access token is used. So this is written by hand, as a `requests` auth class that
plugs into dlt's retrying HTTP client like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from requests.auth import AuthBase

from .errors import AuthError, register_secret
from .limits import ATTEMPTS_ATTRIBUTE, MERCHANT_ATTRIBUTE
from .token_store import TokenStore

log = logging.getLogger(__name__)

# Refresh this long before the access token expires (capped at a tenth of its lifetime, so a
# short-lived token in tests is not refreshed on every request).
REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class ClientCredentials:
    """The app's OAuth client. `repr` hides the secret."""

    client_id: str
    client_secret: str

    def __post_init__(self) -> None:
        register_secret(self.client_secret)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret='***')"


@dataclass(frozen=True)
class TokenResponse:
    """What the token endpoint granted. `repr` hides both tokens."""

    access_token: str
    expires_in: float
    refresh_token: str | None
    scopes: tuple[str, ...] | None

    def __repr__(self) -> str:
        return f"TokenResponse(expires_in={self.expires_in}, scopes={self.scopes})"


def token_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/oauth2/token/"


def request_token(
    session: requests.Session | Any,
    base_url: str,
    credentials: ClientCredentials,
    form: dict[str, str],
    *,
    merchant: str | None = None,
) -> TokenResponse:
    """POST a grant to `/oauth2/token/` and parse the answer; a refusal raises `AuthError` with the
    API's error code and what to do about it (never a token)."""
    url = token_url(base_url)
    body = {**form, "client_id": credentials.client_id, "client_secret": credentials.client_secret}
    try:
        resp = session.post(url, data=body, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise AuthError(f"could not reach the token endpoint {url}: {exc}", merchant=merchant) from None
    if resp.status_code >= 400:
        code, description = _oauth_error(resp)
        reauthorize = f"`make authorize MERCHANT={merchant or '<name>'}`"
        hint = {
            "invalid_grant": "the refresh token was revoked, expired or already rotated away; "
            f"re-authorize the merchant with {reauthorize}",
            "invalid_client": "the client id or secret is wrong; check sources.instamojo.client_id "
            "and client_secret in .dlt/secrets.toml (or SOURCES__INSTAMOJO__CLIENT_SECRET)",
        }.get(code, f"HTTP {resp.status_code} from the token endpoint")
        if resp.status_code == 404:
            # nothing answers OAuth there: the configured base URL is not the API's root
            hint = (f"nothing answers at {url}: sources.instamojo.base_url must be the API's root, e.g. "
                    f"https://api.instamojo.com (no path), got {base_url!r}")
        if code == "invalid_grant" and getattr(resp.request, ATTEMPTS_ATTRIBUTE, 1) > 1:
            # The same refresh was sent more than once because an attempt got no answer: if
            # Instamojo rotated the token in that attempt, its answer (the new refresh token) was
            # lost on the way and the old one is now dead. Nothing on this side can recover it.
            hint = ("an earlier attempt of this refresh got no answer (connection lost); if Instamojo "
                    "rotated the refresh token in that attempt, the new token never arrived and the old "
                    f"one is spent; re-authorize the merchant with {reauthorize}")
        refused = AuthError(
            f"token endpoint {url} refused the {form.get('grant_type')} grant with HTTP "
            f"{resp.status_code} {code}{': ' + description if description else ''} ({hint})",
            merchant=merchant,
        )
        refused.oauth_error = code  # invalid_grant: the merchant's authorization is gone (see merchant.py)
        raise refused
    try:
        doc = orjson.loads(resp.content)
        access = doc["access_token"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise AuthError(f"token endpoint {url} answered without an access_token", merchant=merchant) from None
    register_secret(access)
    refresh = doc.get("refresh_token")
    register_secret(refresh)
    scope = doc.get("scope")
    scopes = tuple(sorted(scope.replace(",", " ").split())) if isinstance(scope, str) else None
    return TokenResponse(access, float(doc.get("expires_in") or 3600), refresh, scopes)


def _oauth_error(resp: requests.Response) -> tuple[str, str]:
    try:
        doc = orjson.loads(resp.content)
        return str(doc.get("error", "error")), str(doc.get("error_description", "") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return "error", ""


class MerchantAuth(AuthBase):
    """Bearer auth for one merchant that keeps its access token fresh.

    - refreshes before the access token expires, and once more when a request gets a 401;
    - when the token endpoint rotates the refresh token, stores the new one (atomically, 0600)
      *before* the new access token is used, so a crash never loses the only valid token;
    - thread-safe: pages fetched in parallel share one token and one refresh.
    """

    def __init__(
        self,
        *,
        merchant: str,
        base_url: str,
        credentials: ClientCredentials,
        refresh_token: str,
        token_store: TokenStore,
        session_factory: Callable[[], Any],
        config_fingerprint: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        register_secret(refresh_token)
        self.merchant = merchant
        self.base_url = base_url
        self._credentials = credentials
        self._refresh_token = refresh_token
        self._store = token_store
        self._session_factory = session_factory
        self._config_fingerprint = config_fingerprint
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._margin = 0.0
        self.granted_scopes: tuple[str, ...] | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"MerchantAuth(merchant={self.merchant!r})"

    def access_token(self) -> str:
        """A valid access token, refreshed first if it is missing or about to expire."""
        with self._lock:
            if self._access_token is None or self._clock() >= self._expires_at - self._margin:
                self._refresh_locked()
            assert self._access_token is not None
            return self._access_token

    def refresh(self, stale_token: str | None = None) -> str:
        """Refresh now, unless another thread already replaced `stale_token`."""
        with self._lock:
            if stale_token is None or self._access_token == stale_token:
                self._refresh_locked()
            assert self._access_token is not None
            return self._access_token

    def _refresh_locked(self) -> None:
        granted = request_token(
            self._session_factory(),
            self.base_url,
            self._credentials,
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token},
            merchant=self.merchant,
        )
        self.refreshes += 1
        if granted.scopes is not None:
            self.granted_scopes = granted.scopes
        rotated = granted.refresh_token and granted.refresh_token != self._refresh_token
        if rotated or self._config_fingerprint is not None:
            # Persist first: if this write fails, the new access token is never used and the
            # error says so; once it succeeds, a crash can no longer lose the rotated token.
            self._store.put(
                self.merchant,
                granted.refresh_token or self._refresh_token,
                granted.scopes,
                config_fingerprint=self._config_fingerprint,
            )
            self._config_fingerprint = None
            if rotated:
                log.info("merchant %r: refresh token rotated and stored", self.merchant)
                self._refresh_token = granted.refresh_token  # type: ignore[assignment]
        elif granted.scopes is not None:
            stored = self._store.get(self.merchant)
            if stored is not None and stored.scopes != granted.scopes:
                self._store.put(self.merchant, stored.refresh_token, granted.scopes)
        self._access_token = granted.access_token
        self._margin = min(REFRESH_MARGIN_SECONDS, granted.expires_in / 10)
        self._expires_at = self._clock() + granted.expires_in

    # -- requests integration ------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        # whose request this is, for the per-merchant rate limit (limits.LimitedAdapter); a 401 is
        # answered by the API client, which refreshes once and resends through dlt's retries
        setattr(request, MERCHANT_ATTRIBUTE, self.merchant)
        return request
