"""OAuth2 as the Instamojo reference describes it: authorization code grant with a consent page,
refresh tokens (rotation configurable), bearer access tokens with scopes, revocation.

Lifetimes run on the real (monotonic) clock, not the sandbox's data clock: advancing the data
clock never expires a token. Tests use lifetimes of a second or two, or the ``expire_token``
fault.

Error bodies follow RFC 6749 §5.2 (see docs/api-behaviour.md): ``{"error": "invalid_grant",
"error_description": "..."}`` with 400, ``invalid_client`` with 401.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .config import ALL_SCOPES, App, SandboxConfig

#: How long the consent page stays valid (between GET /oauth2/authorize and the form's POST).
AUTHORIZATION_REQUEST_TTL = 600.0


class OAuthError(Exception):
    """An error answered by the token endpoint or a resource endpoint as JSON."""

    def __init__(self, status: int, error: str, description: str, **extra):
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.extra = extra

    def body(self) -> dict:
        """The JSON error body."""
        return {"error": self.error, "error_description": self.description, **self.extra}


class AuthorizePageError(Exception):
    """A request to the consent page that must not redirect anywhere (unknown client, a
    redirect_uri that is not registered): answered with an HTML error page."""


@dataclass
class AuthorizationRequest:
    """A consent page shown to a user, waiting for approve/deny."""

    request_id: str
    app: App
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    expires_at: float


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    merchant: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False
    issued: list[str] = field(default_factory=list)  # tokens issued from it (revoked on reuse)


@dataclass
class AccessToken:
    token: str
    client_id: str
    merchant: str
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    client_id: str
    merchant: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False
    rotated: bool = False


def redirect_with(uri: str, params: dict) -> str:
    """``uri`` with query parameters appended (None values left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def parse_scopes(text: str | None) -> tuple[str, ...] | None:
    """Scopes from a space-separated (or comma-separated) string, order kept, duplicates dropped."""
    if text is None:
        return None
    out: list[str] = []
    for part in text.replace(",", " ").split():
        if part not in out:
            out.append(part)
    return tuple(out)


class OAuthServer:
    """Registered apps, consent requests, codes, access and refresh tokens."""

    def __init__(self, config: SandboxConfig, merchants: list[str]):
        self.config = config
        self.merchants = list(merchants)
        self.apps: dict[str, App] = {}
        for app in config.all_apps:
            self.register_app(app)
        self._lock = threading.Lock()
        self._requests: dict[str, AuthorizationRequest] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}

    @staticmethod
    def _clock() -> float:
        return time.monotonic()

    def register_app(self, app: App) -> App:
        """Register (or replace) an app."""
        self.apps[app.client_id] = app
        return app

    # The consent page ---------------------------------------------------------------------
    def start_authorization(self, params: dict[str, str]) -> AuthorizationRequest | str:
        """Validate ``GET /oauth2/authorize``.

        Returns the pending request to render, or a redirect URL carrying an OAuth error when
        the client and redirect URI are valid but something else is not. Raises
        :class:`AuthorizePageError` for an unknown client or a redirect URI that is not an exact
        registered match: those must never redirect.
        """
        client_id = params.get("client_id")
        if not client_id:
            raise AuthorizePageError("The request has no client_id.")
        app = self.apps.get(client_id)
        if app is None:
            raise AuthorizePageError(f"Unknown client_id {client_id!r}: no app is registered with it.")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise AuthorizePageError("The request has no redirect_uri.")
        if redirect_uri not in app.redirect_uris:
            raise AuthorizePageError(
                f"The redirect_uri {redirect_uri!r} is not registered for this app "
                "(it must match a registered URI exactly).")
        state = params.get("state")
        response_type = params.get("response_type", "code")
        if response_type != "code":
            return redirect_with(redirect_uri, {
                "error": "unsupported_response_type",
                "error_description": "Only response_type=code is supported.",
                "state": state,
            })
        scopes = parse_scopes(params.get("scope")) or app.scopes
        bad = [s for s in scopes if s not in ALL_SCOPES or s not in app.scopes]
        if bad:
            return redirect_with(redirect_uri, {
                "error": "invalid_scope",
                "error_description": f"Scopes not available to this app: {' '.join(bad)}",
                "state": state,
            })
        request = AuthorizationRequest(
            request_id=secrets.token_urlsafe(18),
            app=app,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state,
            expires_at=self._clock() + AUTHORIZATION_REQUEST_TTL,
        )
        with self._lock:
            self._requests[request.request_id] = request
        return request

    def decide(self, request_id: str | None, merchant: str | None, decision: str | None) -> str:
        """Handle the consent form: returns the URL to redirect the browser to.

        Raises :class:`AuthorizePageError` for an unknown or expired request or merchant.
        """
        with self._lock:
            request = self._requests.pop(request_id or "", None)
        if request is None or request.expires_at < self._clock():
            raise AuthorizePageError("This authorization request is unknown or has expired; start again.")
        if decision == "deny":
            return redirect_with(request.redirect_uri, {
                "error": "access_denied",
                "error_description": "The merchant denied access.",
                "state": request.state,
            })
        if decision != "approve":
            raise AuthorizePageError("The form must say decision=approve or decision=deny.")
        if merchant not in self.merchants:
            raise AuthorizePageError(f"Unknown merchant {merchant!r}.")
        code = AuthorizationCode(
            code=secrets.token_urlsafe(24),
            client_id=request.app.client_id,
            redirect_uri=request.redirect_uri,
            merchant=merchant,
            scopes=request.scopes,
            expires_at=self._clock() + self.config.code_ttl,
        )
        with self._lock:
            self._codes[code.code] = code
        return redirect_with(request.redirect_uri, {"code": code.code, "state": request.state})

    # The token endpoint -------------------------------------------------------------------
    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict:
        """``POST /oauth2/token/``: returns the token response or raises :class:`OAuthError`."""
        client_id: str | None
        client_secret: str | None
        if basic is not None:
            client_id, client_secret = basic
        else:
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not client_id:
            raise OAuthError(401, "invalid_client", "Client authentication failed: no client_id.")
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret.encode(), (client_secret or "").encode()):
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "The grant_type parameter is missing.")
        if grant_type == "authorization_code":
            return self._grant_code(app, form)
        if grant_type == "refresh_token":
            return self._grant_refresh(app, form)
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")

    def _grant_code(self, app: App, form: dict[str, str]) -> dict:
        code_value = form.get("code")
        if not code_value:
            raise OAuthError(400, "invalid_request", "The code parameter is missing.")
        with self._lock:
            code = self._codes.get(code_value)
            if code is None or code.client_id != app.client_id:
                raise OAuthError(400, "invalid_grant", "Invalid authorization code.")
            if code.used:
                # RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
                for token in code.issued:
                    self._revoke_token_locked(token)
                raise OAuthError(400, "invalid_grant", "Authorization code has already been used.")
            if code.expires_at < self._clock():
                raise OAuthError(400, "invalid_grant", "Authorization code has expired.")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorization request.")
            code.used = True
            response = self._issue_locked(app.client_id, code.merchant, code.scopes)
            code.issued += [response["access_token"], response["refresh_token"]]
            return response

    def _grant_refresh(self, app: App, form: dict[str, str]) -> dict:
        value = form.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", "The refresh_token parameter is missing.")
        with self._lock:
            refresh = self._refresh.get(value)
            if refresh is None or refresh.client_id != app.client_id:
                raise OAuthError(400, "invalid_grant", "Invalid refresh token.")
            if refresh.revoked:
                raise OAuthError(400, "invalid_grant", "Refresh token has been revoked.")
            if refresh.rotated:
                raise OAuthError(400, "invalid_grant", "Refresh token has already been used (it was rotated).")
            if refresh.expires_at < self._clock():
                raise OAuthError(400, "invalid_grant", "Refresh token has expired.")
            scopes = refresh.scopes
            asked = parse_scopes(form.get("scope"))
            if asked:
                extra = [s for s in asked if s not in refresh.scopes]
                if extra:
                    raise OAuthError(400, "invalid_scope", f"Scopes beyond the original grant: {' '.join(extra)}")
                scopes = asked
            if self.config.rotate_refresh_tokens:
                refresh.rotated = True
                return self._issue_locked(app.client_id, refresh.merchant, scopes, keep_scopes=refresh.scopes)
            access = self._new_access_locked(app.client_id, refresh.merchant, scopes)
            return self._response(access, refresh.token, scopes)

    def _new_access_locked(self, client_id: str, merchant: str, scopes) -> AccessToken:
        access = AccessToken(
            token=secrets.token_urlsafe(24),
            client_id=client_id,
            merchant=merchant,
            scopes=frozenset(scopes),
            expires_at=self._clock() + self.config.access_token_ttl,
        )
        self._access[access.token] = access
        return access

    def _issue_locked(self, client_id: str, merchant: str, scopes, keep_scopes=None) -> dict:
        access = self._new_access_locked(client_id, merchant, scopes)
        refresh = RefreshToken(
            token=secrets.token_urlsafe(32),
            client_id=client_id,
            merchant=merchant,
            scopes=tuple(keep_scopes or scopes),
            expires_at=self._clock() + self.config.refresh_token_ttl,
        )
        self._refresh[refresh.token] = refresh
        return self._response(access, refresh.token, scopes)

    def _response(self, access: AccessToken, refresh_token: str, scopes) -> dict:
        return {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": max(0, math.ceil(self.config.access_token_ttl)),
            "refresh_token": refresh_token,
            "scope": " ".join(scopes),
        }

    def issue(self, merchant: str, client_id: str | None = None, scopes=None) -> dict:
        """Issue tokens directly, without the consent flow (an admin shortcut for scripts)."""
        if merchant not in self.merchants:
            raise KeyError(f"unknown merchant {merchant!r}; merchants: {self.merchants}")
        app = self.apps.get(client_id) if client_id else next(iter(self.apps.values()), None)
        if app is None:
            raise KeyError(f"unknown client_id {client_id!r}")
        scopes = tuple(scopes) if scopes else app.scopes
        with self._lock:
            return self._issue_locked(app.client_id, merchant, scopes)

    # Resource endpoints -------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> AccessToken:
        """The access token of an ``Authorization: Bearer`` header, or OAuthError 401."""
        if not authorization:
            raise OAuthError(401, "invalid_token", "Authentication credentials were not provided.")
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise OAuthError(401, "invalid_token", "Use an 'Authorization: Bearer <access token>' header.")
        access = self._access.get(value)
        if access is None:
            raise OAuthError(401, "invalid_token", "Invalid access token.")
        if access.revoked:
            raise OAuthError(401, "invalid_token", "The access token has been revoked.")
        if access.expires_at < self._clock():
            raise OAuthError(401, "invalid_token", "The access token has expired.")
        return access

    def lookup(self, token: str) -> AccessToken | None:
        """The access token record for ``token`` (None if unknown), whatever its state."""
        return self._access.get(token)

    def expire(self, token: str) -> None:
        """Make an access token expire now (the ``expire_token`` fault)."""
        with self._lock:
            access = self._access.get(token)
            if access is not None:
                access.expires_at = self._clock() - 1

    # Revocation ---------------------------------------------------------------------------
    def _revoke_token_locked(self, token: str) -> int:
        n = 0
        access = self._access.get(token)
        if access is not None and not access.revoked:
            access.revoked = True
            n += 1
        refresh = self._refresh.get(token)
        if refresh is not None and not refresh.revoked:
            refresh.revoked = True
            n += 1
        return n

    def revoke(self, merchant: str | None = None, client_id: str | None = None, token: str | None = None) -> int:
        """Revoke tokens: one token (access or refresh), or every token of a merchant and/or a
        client. Returns how many tokens were revoked."""
        if merchant is None and client_id is None and token is None:
            raise ValueError("say what to revoke: merchant, client_id or token")
        with self._lock:
            if token is not None:
                return self._revoke_token_locked(token)
            n = 0
            for store in (self._access, self._refresh):
                for item in store.values():
                    if item.revoked:
                        continue
                    if merchant is not None and item.merchant != merchant:
                        continue
                    if client_id is not None and item.client_id != client_id:
                        continue
                    item.revoked = True
                    n += 1
            return n
