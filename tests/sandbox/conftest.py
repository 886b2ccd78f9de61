"""Fixtures of the sandbox's own tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest
import requests

from tests.oauth_flow import obtain_tokens


class Client:
    """A bearer-token HTTP client for one merchant of a sandbox."""

    def __init__(self, sandbox, merchant: str, tokens: dict):
        self.sandbox = sandbox
        self.merchant = merchant
        self.tokens = tokens
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {tokens['access_token']}"

    def get(self, path_or_url: str, **params) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.sandbox.url(path_or_url)
        return self.http.get(url, params=params or None, timeout=30)

    def all(self, path: str, envelope: str, **params) -> list[dict]:
        """Every record of a list endpoint, following ``next``."""
        out: list[dict] = []
        resp = self.get(path, **params)
        while True:
            assert resp.status_code == 200, resp.text
            body = resp.json()
            out += body[envelope]
            if not body["next"]:
                return out
            resp = self.get(body["next"])


@pytest.fixture
def client(sandbox) -> Client:
    """The first merchant of the ``sandbox`` fixture, authorized for every scope."""
    merchant = sandbox.merchants[0]
    return Client(sandbox, merchant, obtain_tokens(sandbox, merchant))


@pytest.fixture
def make_client():
    """``make_client(sandbox, merchant=None, scopes=None)`` → an authorized Client."""

    def make(sandbox, merchant: str | None = None, scopes=None) -> Client:
        merchant = merchant or sandbox.merchants[0]
        return Client(sandbox, merchant, obtain_tokens(sandbox, merchant, scopes=scopes))

    return make
