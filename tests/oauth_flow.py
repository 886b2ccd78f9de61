"""Tokens for a sandbox merchant through the real OAuth endpoints, the way a browser would:
GET the authorize page, submit the approve form, read the 302 ``Location`` without following
it, exchange the code at ``/oauth2/token/``.

    from tests.oauth_flow import obtain_tokens
    tokens = obtain_tokens(sandbox, sandbox.merchants[0])      # the demo app, every scope
    tokens["refresh_token"], tokens["access_token"]

The flow itself lives in :mod:`instamojo_sandbox.browser` (the benchmark uses it too); this
module adds the test-friendly signature that takes a running :class:`Sandbox` or a base URL.
"""

from __future__ import annotations

import requests

from instamojo_sandbox.browser import ConsentError, authorize_url, consent, exchange_code, refresh
from instamojo_sandbox.browser import obtain_tokens as _obtain_tokens
from instamojo_sandbox.config import DEMO_APP, App

__all__ = ["ConsentError", "authorize_url", "consent", "exchange_code", "obtain_tokens", "refresh",
           "bearer_session"]


def _base_url(sandbox_or_url) -> str:
    return sandbox_or_url if isinstance(sandbox_or_url, str) else sandbox_or_url.base_url


def obtain_tokens(sandbox_or_url, merchant: str, *, app: App = DEMO_APP, redirect_uri: str | None = None,
                  scopes=None, session: requests.Session | None = None) -> dict:
    """Authorize ``merchant`` for ``app`` (default: the demo app) through the consent page and
    return the token response: ``access_token``, ``refresh_token``, ``expires_in``, ``scope``,
    ``token_type``. ``scopes`` default to every scope the app may ask for."""
    return _obtain_tokens(_base_url(sandbox_or_url), app.client_id, app.client_secret,
                          redirect_uri or app.redirect_uris[0], merchant, scopes=scopes, session=session)


def bearer_session(sandbox_or_url, merchant: str, **kwargs) -> requests.Session:
    """A requests.Session that sends ``Authorization: Bearer`` for ``merchant``."""
    tokens = obtain_tokens(sandbox_or_url, merchant, **kwargs)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return session
