"""Merchant onboarding: the OAuth2 authorization-code flow, once per merchant.

`make authorize MERCHANT=acme` (or `python -m pipelines authorize acme`):

1. builds the authorize URL (`<base_url>/oauth2/authorize?response_type=code&client_id=…&
   redirect_uri=…&scope=…&state=…`) with a fresh random `state`;
2. starts a one-shot HTTP server bound to loopback on the redirect URI's port, answering only the
   redirect URI's path;
3. prints the URL and opens a browser when one is there; the merchant logs in at Instamojo and
   approves (or denies);
4. on the redirect back: refuses a wrong or missing `state` (CSRF) and an `error=` answer;
   exchanges the `code` at `/oauth2/token/` at once (codes live 60 s, per the API reference);
5. stores the refresh token and the granted scopes in the token store the sync reads
   (`sources/instamojo/token_store.py`: atomic, mode 0600); the token is never printed.

`merchants` lists who is configured or authorized and what each granted; `revoke-local` forgets a
merchant's stored token (it stays valid at Instamojo until the merchant removes the app).

Secrets (client secret, authorization code, access and refresh tokens) are registered with the
redaction in `sources/instamojo/errors.py` the moment they enter the process, and none of them
is ever written to stdout, stderr or a log line by this module.
"""

from __future__ import annotations

import argparse
import hmac
import html
import http.server
import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import dlt
import orjson
import requests

from sources.instamojo.auth import ClientCredentials, request_token
from sources.instamojo.errors import AuthError, InstamojoError, redact, register_secret
from sources.instamojo.identity import Account, AccountRegistry, IdentityError
from sources.instamojo.names import MerchantNameError, check_merchant_name
from sources.instamojo.resources.profile import PROFILE_ENDPOINTS
from sources.instamojo.settings import ALL_SCOPES, RESOURCE_SCOPES
from sources.instamojo.token_store import TokenStoreError, fingerprint

from .config import SOURCE_SECTION, ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8976/oauth2/callback"
REDIRECT_URI_KEY = f"{SOURCE_SECTION}.redirect_uri"
AUTHORIZE_PATH = "/oauth2/authorize"  # as in the API reference (the token endpoint has a slash)
DEFAULT_TIMEOUT = 300.0
# The token exchange and the authorize-page check are single HTTP calls: bounded, so a hung
# server cannot outlive the code's 60 s lifetime unnoticed.
HTTP_TIMEOUT = 30.0
CODE_LIFETIME_SECONDS = 60  # "This code is valid for 60 sec." (API reference)
# The API reference's credentials step: a redirect_uri is registered by emailing Instamojo.
REGISTER_HOW = "email Instamojo's API-access address with your client id and redirect_uri, as the API reference says"
_LOOPBACK_NAMES = {"localhost"}


# -- errors --------------------------------------------------------------------------------------


class AuthorizeError(InstamojoError):
    """The authorization did not complete; the message says what happened and what to do.
    Nothing was stored (a previously stored token for the merchant is kept)."""


class AuthorizationDenied(AuthorizeError):
    """The authorize page answered `error=…` (the merchant denied access, or the request was
    invalid)."""

    def __init__(self, message: str, *, error: str, merchant: str | None = None) -> None:
        self.error = error
        super().__init__(message, merchant=merchant)


class StateMismatch(AuthorizeError):
    """The callback's `state` was missing or not the one this run sent: possible CSRF, refused."""


class CallbackTimeout(AuthorizeError):
    """No redirect reached the callback server in time."""


class RedirectUriRejected(AuthorizeError):
    """The authorization server refused the redirect URI: it is not registered for the app."""


class CodeExchangeFailed(AuthorizeError):
    """The token endpoint refused the authorization code (expired, used, or mismatched)."""


# -- result --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeResult:
    """What `authorize_merchant` stored. Holds no secret."""

    merchant: str
    scopes: tuple[str, ...]  # granted
    token_store_path: Path
    requested_scopes: tuple[str, ...] = ALL_SCOPES
    redirect_uri: str = DEFAULT_REDIRECT_URI
    account: str | None = None  # the Instamojo account that approved, when the scopes say

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        return self.scopes

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """Read scopes the merchant did not grant (asked for or not)."""
        return tuple(s for s in ALL_SCOPES if s not in self.scopes)

    @property
    def skipped_resources(self) -> tuple[str, ...]:
        """Resources a sync of this merchant will skip for lack of a scope."""
        return resources_lacking(self.scopes)


def resources_lacking(scopes: Iterable[str]) -> tuple[str, ...]:
    """The resources (`user_info`, `payments`, …) whose scope is not among `scopes`."""
    granted = set(scopes)
    return tuple(r for r, scope in RESOURCE_SCOPES.items() if scope not in granted)


# -- building blocks -----------------------------------------------------------------------------


def configured_redirect_uri() -> str:
    """`sources.instamojo.redirect_uri` from dlt config (env `SOURCES__INSTAMOJO__REDIRECT_URI`,
    .dlt/config.toml), else the default loopback URI."""
    try:
        value = dlt.config.get(REDIRECT_URI_KEY)
    except Exception:  # an unparsable provider: the default stands, as in pipelines.config
        value = None
    return str(value) if value else DEFAULT_REDIRECT_URI


def parse_scopes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Validate scopes (comma or space separated, or a list), deduplicated, in the API's order.

    Raises ConfigError naming the unknown ones and the valid choices.
    """
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    items = [i for i in items if i]
    if not items:
        raise ConfigError(f"no scopes given; choose from {', '.join(ALL_SCOPES)}")
    unknown = [i for i in items if i not in ALL_SCOPES]
    if unknown:
        raise ConfigError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)}")
    return tuple(s for s in ALL_SCOPES if s in items)


def validate_merchant_name(merchant: str) -> str:
    """The project's one rule for a merchant name (`sources.instamojo.names`), as a ConfigError."""
    try:
        return check_merchant_name(merchant, "the command line")
    except MerchantNameError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class CallbackAddress:
    """Where the callback server listens: derived from the redirect URI."""

    host: str  # the address to bind (an IP literal)
    port: int
    path: str


def callback_address(redirect_uri: str) -> CallbackAddress:
    """The loopback address, port and path to listen on for `redirect_uri`.

    Only `http://` URIs on a loopback host (127.0.0.0/8, ::1, localhost) with an explicit port are
    accepted: the callback server never listens beyond this machine (RFC 8252's loopback redirect
    for native apps). Raises ConfigError otherwise.
    """
    parts = urlsplit(redirect_uri)
    hint = (
        f"use a loopback URI such as {DEFAULT_REDIRECT_URI} (register it with Instamojo for your app) "
        f"via --redirect-uri or {REDIRECT_URI_KEY} in .dlt/config.toml"
    )
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"redirect URI {redirect_uri!r} must be an http:// URI on this machine; {hint}")
    host = parts.hostname
    if host.lower() in _LOOPBACK_NAMES:
        bind = "127.0.0.1"
    else:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is None or not ip.is_loopback:
            raise ConfigError(
                f"redirect URI {redirect_uri!r} is not on a loopback host: the callback server only "
                f"listens on this machine; {hint}"
            )
        bind = str(ip)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise ConfigError(f"redirect URI {redirect_uri!r} needs an explicit port (e.g. :8976); {hint}")
    if parts.query or parts.fragment:
        raise ConfigError(f"redirect URI {redirect_uri!r} must not carry a query or fragment; {hint}")
    return CallbackAddress(bind, port, parts.path or "/")


def build_authorize_url(
    base_url: str, client_id: str, redirect_uri: str, scopes: Sequence[str], state: str
) -> str:
    """The front-channel authorize URL (space-separated scopes, as RFC 6749 asks)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
        }
    )
    return f"{base_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"


def browser_available() -> bool:
    """Whether a graphical browser can plausibly be opened (a console browser such as lynx would
    take over the terminal the URL was printed to, so a Linux box without a display has none)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def open_in_browser(url: str) -> bool:
    """Open `url` in the default browser when there is one; True if it was handed over."""
    if not browser_available():
        return False
    try:
        return bool(webbrowser.open(url, new=1))
    except Exception as exc:  # a broken browser setup must not stop the flow: the URL is printed
        log.debug("could not open a browser: %s", exc.__class__.__name__)
        return False


def _page_text(resp: requests.Response, limit: int = 300) -> str:
    """The gist of an error answer: an OAuth JSON error, or the visible text of an HTML page."""
    try:
        doc = orjson.loads(resp.content)
        if isinstance(doc, dict) and doc.get("error"):
            text = f"{doc['error']}: {doc.get('error_description') or ''}".rstrip(": ")
            return redact(text[:limit])
    except orjson.JSONDecodeError:
        pass
    body = re.sub(r"(?is)<(script|style|title|head)\b.*?</\1>", " ", resp.text or "")
    body = html.unescape(re.sub(r"<[^>]+>", " ", body))
    body = " ".join(body.split())
    return redact(body[:limit] + ("…" if len(body) > limit else ""))


class _BoundedSession:
    """A requests session whose POSTs carry a timeout and whose last response is kept, so a
    refusal's OAuth error code can be read without a second token client."""

    def __init__(self) -> None:
        self._session = requests.Session()
        self.last_response: requests.Response | None = None

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        self.last_response = self._session.post(url, **kwargs)
        return self.last_response

    def close(self) -> None:
        self._session.close()


# -- the callback server -------------------------------------------------------------------------


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>instamojo-elt: {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}}
h1{{font-size:1.4em}} .ok{{color:#1a7f37}} .fail{{color:#b42318}}</style></head>
<body><h1 class="{cls}">{title}</h1><p>{body}</p></body></html>
"""


def _page(title: str, body: str, ok: bool) -> bytes:
    return _PAGE.format(title=html.escape(title), body=html.escape(body), cls="ok" if ok else "fail").encode()


class _Flow:
    """One authorization attempt: the expected state, and what happened to it. The callback
    handler calls `handle`; the waiting thread reads `outcome` once `finished` is set."""

    def __init__(self, *, settings: Settings, merchant: str, redirect_uri: str, state: str,
                 scopes: tuple[str, ...], path: str) -> None:
        self.settings = settings
        self.merchant = merchant
        self.redirect_uri = redirect_uri
        self.state = state
        self.scopes = scopes
        self.path = path
        self.finished = threading.Event()
        self.outcome: AuthorizeResult | AuthorizeError | None = None
        self._lock = threading.Lock()
        self._claimed = False

    @property
    def claimed(self) -> bool:
        """Whether an OAuth answer arrived (it may still be being processed)."""
        return self._claimed

    def handle(self, params: Mapping[str, str]) -> tuple[int, bytes]:
        """Process one request to the callback path; returns the HTTP status and page."""
        if not any(k in params for k in ("code", "state", "error")):
            # a reload or a stray request: not an OAuth answer, keep waiting for the real one
            return 400, _page("Waiting for Instamojo", "This address receives the redirect from "
                              "Instamojo's authorize page; nothing to do here yet.", ok=False)
        register_secret(params.get("code"))  # first thing: the code is a credential for 60 s
        with self._lock:
            if self._claimed:
                return 409, _page("Already handled", "This authorization has already been answered; "
                                  "see the terminal. Run the command again to start over.", ok=False)
            self._claimed = True
        try:
            self.outcome = self._complete(params)
        except AuthorizeError as exc:
            self.outcome = exc
        except Exception as exc:  # unexpected (disk full, a bug): still a clear, redacted error
            log.debug("callback failed", exc_info=True)
            self.outcome = AuthorizeError(
                f"the authorization failed after the redirect: {exc.__class__.__name__}: {exc}",
                merchant=self.merchant,
            )
        if isinstance(self.outcome, AuthorizeResult):
            scopes = ", ".join(self.outcome.scopes) or "none"
            return 200, _page(
                "Authorized",
                f"Merchant {self.merchant!r} authorized this app (scopes: {scopes}). Its refresh token is "
                "stored on this machine. You can close this tab and return to the terminal.",
                ok=True,
            )
        status = 403 if isinstance(self.outcome, (StateMismatch, AuthorizationDenied)) else 502
        return status, _page("Authorization not completed", f"{self.outcome} You can close this tab.", ok=False)

    def _complete(self, params: Mapping[str, str]) -> AuthorizeResult:
        state = params.get("state") or ""
        # `error` may be shown in the terminal even from a forged request: short, printable only
        error = "".join(ch for ch in params.get("error") or "" if ch.isprintable())[:100] or None
        # The state comes first: an answer we did not ask for (forged, or from an older attempt)
        # is refused whatever it says, and compared in constant time.
        if not state or not hmac.compare_digest(state.encode(), self.state.encode()):
            what = "without a state" if not state else "with a state that is not the one this run sent"
            raise StateMismatch(
                f"refused a callback {what}{f' (error={error})' if error else ''}: it did not come from "
                "this authorization request (possible CSRF, or a tab left over from an earlier attempt). "
                "Nothing was stored; run the command again and use the URL it prints.",
                merchant=self.merchant,
            )
        if error:
            # shown in the terminal: keep it short and free of control characters
            description = "".join(ch for ch in params.get("error_description") or "" if ch.isprintable())[:300]
            if error == "access_denied":
                why = "the merchant denied access on Instamojo's authorize page"
            else:
                why = f"Instamojo's authorize page answered error={error}"
            raise AuthorizationDenied(
                f"{why}{': ' + description if description else ''}. Nothing was stored; run "
                f"`make authorize MERCHANT={self.merchant}` again and approve to add the merchant.",
                error=error,
                merchant=self.merchant,
            )
        code = params.get("code")
        if not code:
            raise AuthorizeError("the callback carried neither a code nor an error; nothing was stored",
                                 merchant=self.merchant)
        granted = self._exchange(code)
        refresh = granted.refresh_token
        if not refresh:
            raise CodeExchangeFailed(
                "the token endpoint granted an access token but no refresh token, so scheduled syncs "
                "could not run; check that the app is allowed offline access at Instamojo",
                merchant=self.merchant,
            )
        scopes = _order_scopes(granted.scopes if granted.scopes is not None else _scope_param(params) or self.scopes)
        account = self._account(granted.access_token, scopes)
        configured = self.settings.refresh_tokens.get(self.merchant)
        # A token configured for this merchant in secrets.toml/env is older than this one: its
        # fingerprint marks the stored token as the newer (see token_store's docstring).
        self.settings.token_store.put(
            self.merchant, refresh, scopes,
            config_fingerprint=fingerprint(configured) if configured else None,
            account_id=account.id if account else None,
            account_username=account.username if account else None,
        )
        return AuthorizeResult(
            merchant=self.merchant,
            scopes=scopes,
            token_store_path=self.settings.token_store_path,
            requested_scopes=self.scopes,
            redirect_uri=self.redirect_uri,
            account=account.describe() if account else None,
        )

    def _account(self, access_token: str, scopes: tuple[str, ...]) -> Account | None:
        """Which Instamojo account approved (user-contact's account_id, user-info's username);
        refuses an account already stored under another name, so one account has one name."""
        docs: dict[str, Any] = {}
        with requests.Session() as session:
            for name, endpoint in PROFILE_ENDPOINTS:
                if endpoint.scope not in scopes:
                    continue
                resp = session.get(self.settings.base_url.rstrip("/") + endpoint.path, timeout=HTTP_TIMEOUT,
                                   headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
                if resp.ok:
                    try:
                        docs[name] = resp.json()
                    except ValueError:
                        pass
        account = Account.from_profile(docs.get("user_info"), docs.get("user_contact"))
        if account is None:
            log.warning("merchant %r: the scopes granted do not say which Instamojo account approved; "
                        "a second name for the same account would not be noticed", self.merchant)
            return None
        known = {m: Account(e.account_id, e.account_username) for m, e in self.settings.token_store.merchants().items()
                 if m != self.merchant and (e.account_id or e.account_username)}
        try:
            AccountRegistry(known).claim(self.merchant, account)
        except IdentityError as exc:
            raise AuthorizeError(f"{exc} Nothing was stored.".replace(f"merchant {self.merchant!r}: ", ""),
                                 merchant=self.merchant) from None
        return account

    def _exchange(self, code: str) -> Any:
        session = _BoundedSession()
        credentials = ClientCredentials(str(self.settings.client_id), str(self.settings.client_secret))
        try:
            return request_token(
                session, self.settings.base_url, credentials,
                {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri},
                merchant=None,  # CodeExchangeFailed names the merchant
            )
        except AuthError as exc:
            resp = session.last_response
            if resp is None or resp.status_code < 400:
                raise CodeExchangeFailed(str(exc), merchant=self.merchant) from None
            gist = _page_text(resp)
            if "invalid_grant" in gist:
                hint = (f"authorization codes live {CODE_LIFETIME_SECONDS} s and work once, and the "
                        "redirect URI must be the one of the authorize request; run the command again "
                        "and approve promptly")
            elif "invalid_client" in gist:
                hint = (f"the client id or secret is wrong; check {SOURCE_SECTION}.client_id and "
                        f"client_secret in .dlt/secrets.toml (or SOURCES__INSTAMOJO__CLIENT_SECRET)")
            else:
                hint = (f"check that {SOURCE_SECTION}.base_url ({self.settings.base_url}) is the API's root, "
                        "e.g. https://api.instamojo.com" if resp.status_code == 404 else
                        f"HTTP {resp.status_code} from the token endpoint")
            raise CodeExchangeFailed(
                f"the token endpoint refused the authorization code with HTTP {resp.status_code} "
                f"{gist or '(no details)'} ({hint}). Nothing was stored.",
                merchant=self.merchant,
            ) from None
        finally:
            session.close()


def _scope_param(params: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(params.get("scope", "").replace(",", " ").split())


def _order_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Known scopes in the API's order, then any others the API granted, sorted."""
    given = set(scopes)
    return tuple(s for s in ALL_SCOPES if s in given) + tuple(sorted(given - set(ALL_SCOPES)))


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server_version = "instamojo-elt-authorize"
    timeout = 15  # a browser's idle pre-connection must not hold a thread for long

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        flow: _Flow = self.server.flow  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        if parts.path != flow.path:
            self._answer(404, _page("Not found", "This local server only receives Instamojo's "
                                    "authorization redirect.", ok=False))
            return
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        status, page = 500, _page("Error", "unexpected error; see the terminal", ok=False)
        try:
            status, page = flow.handle(params)
        finally:
            try:
                self._answer(status, page)
            finally:
                if flow.outcome is not None:
                    flow.finished.set()  # after the page is written: the caller may then exit

    def _answer(self, status: int, page: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")  # the URL held the code
            self.end_headers()
            self.wfile.write(page)
        except OSError:  # the browser went away; the terminal still says what happened
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # http.server logs the request line, whose query holds the code and state: never log it.
        log.debug("callback server: %s", redact(format % args).split("?", 1)[0])


class _CallbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: CallbackAddress, flow: _Flow) -> None:
        self.flow = flow
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        super().__init__((address.host, address.port), _CallbackHandler)


def _start_server(address: CallbackAddress, flow: _Flow, redirect_uri: str) -> _CallbackServer:
    try:
        server = _CallbackServer(address, flow)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {address.host}:{address.port} for the redirect URI {redirect_uri} "
            f"({exc.strerror or exc}); stop what uses that port, or pass --redirect-uri with another "
            "port (it must be registered with Instamojo for your app too)"
        ) from None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="authorize-callback", daemon=True)
    thread.start()
    return server


# -- the flow ------------------------------------------------------------------------------------


def _check_authorize_url(url: str, *, merchant: str, redirect_uri: str, client_id: str) -> None:
    """Ask the authorize URL once, as a browser would, to catch a refusal before anyone waits.

    The sandbox, like most OAuth servers, answers an unregistered redirect URI or an unknown
    client with an error page and no redirect (so the callback never comes). A page that asks to
    log in, or any answer this cannot interpret, is left to the browser.
    """
    try:
        resp = requests.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT, headers={"Accept": "text/html"})
    except requests.RequestException as exc:
        raise AuthorizeError(
            f"cannot reach the authorize page {url.split('?', 1)[0]} ({exc.__class__.__name__}); check "
            f"{SOURCE_SECTION}.base_url and the network",
            merchant=merchant,
        ) from None
    if resp.status_code < 400:
        return
    gist = _page_text(resp)
    lowered = gist.lower()
    if resp.status_code == 400 and "redirect" in lowered:
        raise RedirectUriRejected(
            f"the authorize page refused the redirect URI {redirect_uri} (HTTP 400: {gist}). Register "
            f"exactly {redirect_uri} as a redirect URI of client id {client_id!r} with Instamojo "
            f"({REGISTER_HOW}), or pass "
            f"--redirect-uri / set {REDIRECT_URI_KEY} to one that is registered.",
            merchant=merchant,
        )
    if resp.status_code in (400, 401) and "client" in lowered:
        raise AuthorizeError(
            f"the authorize page does not know client id {client_id!r} (HTTP {resp.status_code}: {gist}); "
            f"check {SOURCE_SECTION}.client_id in .dlt/secrets.toml",
            merchant=merchant,
        )
    if resp.status_code == 400 and "scope" in lowered:
        raise AuthorizeError(
            f"the authorize page refused the scopes asked for (HTTP 400: {gist}); ask only for scopes "
            "the app was granted by Instamojo (--scopes)",
            merchant=merchant,
        )
    log.warning("the authorize page answered HTTP %s (%s); continuing, the browser will show it",
                resp.status_code, gist)


def authorize_merchant(
    settings: Settings,
    merchant: str,
    *,
    scopes: Sequence[str] = ALL_SCOPES,
    redirect_uri: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    open_browser: bool = True,
    on_url: Callable[[str], None] | None = None,
) -> AuthorizeResult:
    """Run the OAuth2 authorization-code flow for one merchant and store its refresh token.

    Args:
        settings: Base URL, client id/secret, configured refresh tokens and the token store path.
        merchant: The name syncs will use for this merchant (letters, digits, `_ . -`).
        scopes: The read scopes to ask for (default: all six).
        redirect_uri: A loopback `http://` URI registered for the app; default
            `sources.instamojo.redirect_uri`, else `http://127.0.0.1:8976/oauth2/callback`.
        timeout: Seconds to wait for the merchant's answer (the redirect to the callback server).
        open_browser: Open the URL in a browser when one is available.
        on_url: Called with the authorize URL once the callback server listens (the demo and
            tests pass a function that plays the browser); it may block until the redirect.

    Returns:
        AuthorizeResult: the merchant, the scopes granted and the token store path.

    Raises:
        ConfigError: client id/secret missing, a bad merchant name, scope or redirect URI, or the
            callback port in use.
        RedirectUriRejected: the authorize page refused the redirect URI (not registered).
        StateMismatch: the callback's state was missing or wrong (CSRF); nothing stored.
        AuthorizationDenied: the merchant denied access (or the page answered another error).
        CodeExchangeFailed: the token endpoint refused the code (e.g. expired after 60 s).
        CallbackTimeout: no answer within `timeout` seconds.
    """
    validate_merchant_name(merchant)
    missing = [n for n, v in (("client_id", settings.client_id), ("client_secret", settings.client_secret)) if not v]
    if missing:
        raise ConfigError(
            "authorizing a merchant needs the app's OAuth client: set "
            + " and ".join(f"{SOURCE_SECTION}.{m}" for m in missing)
            + " in .dlt/secrets.toml (copy .dlt/secrets.toml.example) or the environment variables "
            + ", ".join(f"SOURCES__INSTAMOJO__{m.upper()}" for m in missing)
        )
    register_secret(settings.client_secret)
    wanted = parse_scopes(scopes)
    redirect_uri = redirect_uri or configured_redirect_uri()
    address = callback_address(redirect_uri)
    if timeout <= 0:
        raise ConfigError(f"timeout must be positive seconds, got {timeout}")

    state = secrets.token_urlsafe(32)
    url = build_authorize_url(settings.base_url, str(settings.client_id), redirect_uri, wanted, state)
    flow = _Flow(settings=settings, merchant=merchant, redirect_uri=redirect_uri, state=state,
                 scopes=wanted, path=address.path)
    deadline = time.monotonic() + timeout
    server = _start_server(address, flow, redirect_uri)
    try:
        _check_authorize_url(url, merchant=merchant, redirect_uri=redirect_uri, client_id=str(settings.client_id))
        print(
            f"To authorize merchant {merchant!r}, open this URL in a browser, log in as the merchant and "
            f"approve:\n\n  {url}\n\nWaiting up to {timeout:g} s for the redirect to {redirect_uri} …",
            file=sys.stderr, flush=True,
        )
        if open_browser and open_in_browser(url):
            print("(opened in your browser)", file=sys.stderr, flush=True)
        if on_url is not None:
            try:
                on_url(url)
            except Exception as exc:
                if not flow.finished.is_set():
                    raise AuthorizeError(
                        f"the on_url callback failed before the authorization finished: "
                        f"{exc.__class__.__name__}: {exc}",
                        merchant=merchant,
                    ) from None
                log.debug("on_url raised after the callback was handled: %s", exc.__class__.__name__)
        finished = flow.finished.wait(max(0.0, deadline - time.monotonic()))
        if not finished and flow.claimed:
            # The redirect arrived in time and its code is being exchanged: let that finish (it is
            # bounded by HTTP_TIMEOUT) rather than report a timeout and store a token afterwards.
            finished = flow.finished.wait(HTTP_TIMEOUT + 5)
        if not finished:
            raise CallbackTimeout(
                f"no answer reached the callback server at {redirect_uri} within {timeout:g} s. If the "
                "browser showed an error page instead of Instamojo's approve page, the redirect URI is "
                f"probably not registered: register exactly {redirect_uri} for client id "
                f"{settings.client_id!r} with Instamojo ({REGISTER_HOW}), or pass --redirect-uri "
                f"/ set {REDIRECT_URI_KEY} to a registered one. Otherwise run again and approve in time "
                "(--timeout). Nothing was stored.",
                merchant=merchant,
            )
    finally:
        server.shutdown()
        server.server_close()
    if isinstance(flow.outcome, AuthorizeError):
        raise flow.outcome
    assert isinstance(flow.outcome, AuthorizeResult)
    return flow.outcome


# -- listing and forgetting ----------------------------------------------------------------------


@dataclass(frozen=True)
class MerchantInfo:
    """One merchant as `merchants` shows it. Holds no token."""

    merchant: str
    token_source: str  # "token store", "secrets.toml/env", or "none"
    scopes: tuple[str, ...] | None  # None: not known yet
    authorized_at: str | None
    synced: bool  # included in `make sync`
    account: str | None = None  # the Instamojo account behind the name (authorize, or first sync)


def list_merchants(settings: Settings) -> list[MerchantInfo]:
    """Every merchant configured (listed, or with a configured token) or stored in the token
    store, with the token a sync would use, the scopes granted and when they were stored."""
    stored = settings.token_store.merchants()
    names = sorted(set(settings.merchants) | set(settings.refresh_tokens) | set(stored))
    synced = _synced_accounts(settings)
    infos = []
    for name in names:
        entry = stored.get(name)
        configured = settings.refresh_tokens.get(name)
        if configured and (entry is None or entry.config_fingerprint != fingerprint(configured)):
            # choose_refresh_token's rule: a configured token set since the entry was written wins
            source, scopes, when = "secrets.toml/env", None, None
        elif entry is not None:
            source, scopes, when = "token store", entry.scopes or None, entry.updated_at or None
        else:
            source, scopes, when = "none", None, None
        account = synced.get(name) or (
            Account(entry.account_id, entry.account_username) if entry and (entry.account_id or entry.account_username)
            else None)
        infos.append(MerchantInfo(name, source, scopes, when, synced=name in settings.merchants,
                                  account=account.describe() if account else None))
    return infos


def _synced_accounts(settings: Settings) -> dict[str, Account]:
    """The account each merchant's syncs found (the engine's committed state), by name."""
    import dlt

    if not (settings.pipelines_dir / settings.pipeline_name / "state.json").exists():
        return {}
    state = dlt.pipeline(pipeline_name=settings.pipeline_name, pipelines_dir=str(settings.pipelines_dir)).state
    merchants = state.get("sources", {}).get("instamojo", {}).get("merchants", {})
    found = {m: Account.from_state(st.get("account")) for m, st in merchants.items()}
    return {m: a for m, a in found.items() if a is not None}


def render_merchants(settings: Settings, infos: Sequence[MerchantInfo]) -> str:
    """The `merchants` listing as text."""
    if not infos:
        return (f"No merchants yet (token store: {settings.token_store_path}). Add one with "
                "`make authorize MERCHANT=<name>`.")
    rows = [("merchant", "Instamojo account", "token", "in sync", "authorized (UTC)", "scopes granted")]
    notes: list[str] = []
    for i in infos:
        if i.scopes is None:
            scopes = "unknown (recorded at its first sync)" if i.token_source != "none" else "-"
        elif set(i.scopes) >= set(ALL_SCOPES):
            scopes = f"all {len(ALL_SCOPES)} read scopes"
        else:
            scopes = ", ".join(i.scopes) or "none"
        rows.append((i.merchant, i.account or "not known yet", i.token_source, "yes" if i.synced else "no",
                     (i.authorized_at or "-").replace("+00:00", ""), scopes))
        if i.token_source == "none":
            notes.append(f"{i.merchant}: no token; run `make authorize MERCHANT={i.merchant}`")
        if i.scopes is not None and (lacking := resources_lacking(i.scopes)):
            notes.append(f"{i.merchant}: a sync skips {', '.join(lacking)} (scopes not granted)")
        if not i.synced:
            notes.append(f"{i.merchant}: not in {SOURCE_SECTION}.merchants, so `make sync` leaves it out")
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = "\n".join(lines) + f"\n\nToken store: {settings.token_store_path}"
    if notes:
        out += "\n" + "\n".join(f"  - {n}" for n in notes)
    return out


def forget_merchant(settings: Settings, merchant: str) -> bool:
    """Remove the merchant's stored token locally (not at Instamojo); True if there was one."""
    return settings.token_store.remove(merchant)


# -- commands ------------------------------------------------------------------------------------

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2  # as in pipelines/cli.py


def _scopes_arg(value: str) -> tuple[str, ...]:
    try:
        return parse_scopes(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timeout_arg(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def cmd_authorize(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        result = authorize_merchant(
            settings, args.merchant, scopes=args.scopes or ALL_SCOPES, redirect_uri=args.redirect_uri,
            timeout=args.timeout, open_browser=not args.no_browser,
        )
    except RedirectUriRejected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (AuthorizeError, TokenStoreError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    lines = [
        f"Merchant {result.merchant!r} authorized. Scopes granted: {', '.join(result.scopes) or 'none'}.",
        f"Refresh token stored in {result.token_store_path} (mode 0600; never printed).",
    ]
    if result.account:
        lines.insert(1, f"Approved by the Instamojo account {result.account}; every sync checks the token still is.")
    if result.skipped_resources:
        lines.append(f"Not granted, so a sync will skip: {', '.join(result.skipped_resources)}.")
    if settings.merchants and result.merchant not in settings.merchants:
        lines.append(f"Note: {SOURCE_SECTION}.merchants in .dlt/config.toml does not list {result.merchant!r}; "
                     "add it there so `make sync` includes it.")
    lines.append(f"Next: `make sync ARGS=\"--merchants {result.merchant}\"`, and `make merchants` to review.")
    print("\n".join(lines))
    return EXIT_OK


def cmd_merchants(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        print(render_merchants(settings, list_merchants(settings)))
    except TokenStoreError as exc:  # a file to fix or delete: a configuration problem
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_revoke_local(args: argparse.Namespace) -> int:
    settings = load_settings()
    validate_merchant_name(args.merchant)
    try:
        removed = forget_merchant(settings, args.merchant)
    except TokenStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    still_configured = args.merchant in settings.refresh_tokens
    if not removed:
        stored = ", ".join(settings.token_store.merchants()) or "none"
        msg = f"error: no stored token for merchant {args.merchant!r} in {settings.token_store_path} (stored: {stored})"
        if still_configured:
            msg += (f"; its token is configured in .dlt/secrets.toml or the environment "
                    f"({SOURCE_SECTION}.refresh_tokens.{args.merchant}): remove it there")
        print(msg, file=sys.stderr)
        return EXIT_CONFIG
    lines = [
        f"Forgot the stored refresh token of merchant {args.merchant!r} ({settings.token_store_path}).",
        "This does NOT revoke it at Instamojo: the token stays valid there until it expires or the "
        "merchant removes the app from their Instamojo dashboard.",
    ]
    if still_configured:
        lines.append(f"A token is still configured for {args.merchant!r} in .dlt/secrets.toml or the environment "
                     f"({SOURCE_SECTION}.refresh_tokens.{args.merchant}); syncs will use it until you remove it.")
    print("\n".join(lines))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `authorize`, `merchants` and `revoke-local` to the CLI (called by pipelines/cli.py)."""
    p = subparsers.add_parser(
        "authorize",
        help="add a merchant: OAuth2 in the browser, stores the merchant's refresh token",
        description="Send a merchant through Instamojo's authorize page once: prints the authorize URL "
        "(and opens a browser when there is one), waits for the redirect on a one-shot loopback server "
        "at the redirect URI, checks the state, exchanges the code at once and stores the refresh token "
        "and granted scopes in the token store (atomic, mode 0600, never printed). Needs "
        f"{SOURCE_SECTION}.client_id and client_secret in .dlt/secrets.toml, and the redirect URI "
        "registered with Instamojo for the app.",
        epilog="Exit codes: 0 authorized; 1 denied, wrong state, code refused or timed out; 2 configuration "
        "problem (missing client id/secret, bad redirect URI or scopes, redirect URI not registered, port in "
        "use). Example: make authorize MERCHANT=acme ARGS=\"--scopes payments:read,payouts:read\"",
    )
    p.add_argument("merchant", help="the name syncs will use for this merchant, e.g. acme")
    p.add_argument("--scopes", type=_scopes_arg, metavar="LIST",
                   help=f"comma-separated scopes to ask for (default: all of {', '.join(ALL_SCOPES)})")
    p.add_argument("--redirect-uri", metavar="URI",
                   help=f"loopback redirect URI registered for the app (default: {REDIRECT_URI_KEY}, "
                   f"else {DEFAULT_REDIRECT_URI}); the callback server listens on its port and path")
    p.add_argument("--timeout", type=_timeout_arg, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"how long to wait for the merchant to approve (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--no-browser", action="store_true",
                   help="only print the URL (open it on any machine whose browser can reach the redirect URI)")
    p.set_defaults(func=cmd_authorize)

    p = subparsers.add_parser(
        "merchants",
        help="list merchants, the scopes each granted and when (never a token)",
        description="List every merchant configured (sources.instamojo.merchants or a refresh token in "
        ".dlt/secrets.toml) or authorized (the token store): where its token comes from, whether "
        "`make sync` includes it, when it was authorized, the scopes it granted and which resources a "
        "sync will skip for lack of a scope. Never shows a token.",
    )
    p.set_defaults(func=cmd_merchants)

    p = subparsers.add_parser(
        "revoke-local",
        help="forget a merchant's stored refresh token (locally; not at Instamojo)",
        description="Remove the merchant's refresh token and scopes from the local token store, so syncs "
        "stop using it. This does not revoke the token at Instamojo: it stays valid there until it "
        "expires or the merchant removes the app. A token configured in .dlt/secrets.toml is not touched.",
        epilog="Exit codes: 0 removed; 2 no stored token for that merchant.",
    )
    p.add_argument("merchant", help="the merchant's name, as `merchants` lists it")
    p.set_defaults(func=cmd_revoke_local)
