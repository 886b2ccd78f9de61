"""A scripted browser for the sandbox's consent page: obtains tokens for a merchant through the
real OAuth endpoints over HTTP, as a person would (GET the authorize page, submit the approve
form, read the 302 ``Location`` without following it, exchange the code at /oauth2/token/).

The consent page's form (documented in README): ``POST /oauth2/authorize/`` with fields
``request_id`` (hidden, from the page), ``merchant`` (a username from the select) and
``decision`` (``approve`` or ``deny``).
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


class ConsentError(RuntimeError):
    """The consent flow did not end with a code (an error page, or an error redirect)."""

    def __init__(self, message: str, status: int | None = None, params: dict | None = None):
        super().__init__(message)
        self.status = status
        self.params = params or {}


def authorize_url(base_url: str, client_id: str, redirect_uri: str, scopes=None, state: str | None = None) -> str:
    """The ``/oauth2/authorize`` URL an app sends a merchant to."""
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    if scopes:
        params["scope"] = " ".join(scopes)
    if state is not None:
        params["state"] = state
    return f"{base_url.rstrip('/')}/oauth2/authorize/?{urlencode(params)}"


def consent(base_url: str, client_id: str, redirect_uri: str, merchant: str, scopes=None,
            state: str | None = None, decision: str = "approve",
            session: requests.Session | None = None) -> dict[str, str]:
    """Go through the consent page; returns the query parameters of the redirect (``code`` and
    ``state``, or ``error`` after a deny). Raises :class:`ConsentError` on an error page."""
    http = session or requests.Session()
    page = http.get(authorize_url(base_url, client_id, redirect_uri, scopes, state), allow_redirects=False,
                    timeout=30)
    if page.status_code == 302:
        params = _redirect_params(page.headers["Location"], redirect_uri)
        raise ConsentError(f"the authorize request was refused: {params.get('error')}", 302, params)
    if page.status_code != 200:
        raise ConsentError(f"the authorize page answered {page.status_code}", page.status_code)
    match = _REQUEST_ID.search(page.text)
    if match is None:
        raise ConsentError("no request_id on the consent page", page.status_code)
    answer = http.post(f"{base_url.rstrip('/')}/oauth2/authorize/",
                       data={"request_id": match.group(1), "merchant": merchant, "decision": decision},
                       allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise ConsentError(f"the consent form answered {answer.status_code}", answer.status_code)
    return _redirect_params(answer.headers["Location"], redirect_uri)


def _redirect_params(location: str, redirect_uri: str) -> dict[str, str]:
    if not location.startswith(redirect_uri):
        raise ConsentError(f"redirected to {location!r}, not to the redirect URI")
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange_code(base_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str,
                  session: requests.Session | None = None) -> requests.Response:
    """POST the code to /oauth2/token/ (form-encoded, client credentials in the form)."""
    http = session or requests.Session()
    return http.post(f"{base_url.rstrip('/')}/oauth2/token/", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "client_secret": client_secret,
    }, timeout=30)


def refresh(base_url: str, client_id: str, client_secret: str, refresh_token: str,
            session: requests.Session | None = None) -> requests.Response:
    """POST a refresh_token grant to /oauth2/token/."""
    http = session or requests.Session()
    return http.post(f"{base_url.rstrip('/')}/oauth2/token/", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": client_id, "client_secret": client_secret,
    }, timeout=30)


def obtain_tokens(base_url: str, client_id: str, client_secret: str, redirect_uri: str, merchant: str,
                  scopes=None, session: requests.Session | None = None) -> dict:
    """The whole flow for one merchant; returns the token response (access_token,
    refresh_token, expires_in, scope, token_type)."""
    state = secrets.token_urlsafe(8)
    params = consent(base_url, client_id, redirect_uri, merchant, scopes, state, session=session)
    if "code" not in params:
        raise ConsentError(f"no code in the redirect: {params}", 302, params)
    if params.get("state") != state:
        raise ConsentError("the state came back different", 302, params)
    resp = exchange_code(base_url, client_id, client_secret, params["code"], redirect_uri, session=session)
    if resp.status_code != 200:
        raise ConsentError(f"token exchange failed: {resp.status_code} {resp.text}", resp.status_code)
    return resp.json()
