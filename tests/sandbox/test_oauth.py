"""OAuth2 over real HTTP: consent page → approve → code → token → refresh → rotation → revoked →
expired code → reused code → wrong redirect_uri → wrong secret; bearer checks and scopes."""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from instamojo_sandbox import ALL_SCOPES, DEMO_APP, App
from tests.oauth_flow import (
    ConsentError,
    authorize_url,
    consent,
    exchange_code,
    obtain_tokens,
    refresh,
)

APP = DEMO_APP
REDIRECT = APP.redirect_uris[0]


def token_post(sandbox, **form) -> requests.Response:
    return requests.post(sandbox.url("/oauth2/token/"), data=form, timeout=30)


def code_for(sandbox, merchant=None, **kwargs) -> str:
    params = consent(sandbox.base_url, APP.client_id, REDIRECT, merchant or sandbox.merchants[0], **kwargs)
    return params["code"]


def get_payments(sandbox, access_token: str | None, header: str | None = None) -> requests.Response:
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    return requests.get(sandbox.url("/v2/payments/"), headers=headers, timeout=30)


def test_consent_page_is_a_usable_form(sandbox):
    page = requests.get(authorize_url(sandbox.base_url, APP.client_id, REDIRECT, ["payments:read"], "s1"),
                        timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<form method="post" action="/oauth2/authorize/">' in page.text
    assert re.search(r'<input type="hidden" name="request_id" value="[^"]+">', page.text)
    assert re.findall(r'<option value="([^"]+)"', page.text) == sandbox.merchants
    assert 'name="decision" value="approve"' in page.text and 'name="decision" value="deny"' in page.text
    assert "payments:read" in page.text


def test_whole_flow_code_token_refresh(sandbox):
    merchant = sandbox.merchants[1]
    params = consent(sandbox.base_url, APP.client_id, REDIRECT, merchant, state="xyz-123")
    assert params["state"] == "xyz-123" and params["code"]
    resp = exchange_code(sandbox.base_url, APP.client_id, APP.client_secret, params["code"], REDIRECT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    tokens = resp.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == set(ALL_SCOPES)
    assert tokens["access_token"] and tokens["refresh_token"]
    info = requests.get(sandbox.url("/v2/user-info/"), headers={"Authorization": f"Bearer {tokens['access_token']}"},
                        timeout=30)
    assert info.status_code == 200 and info.json()["username"] == merchant

    again = refresh(sandbox.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"])
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["access_token"] != tokens["access_token"]
    # rotation is off by default: the same refresh token comes back and keeps working
    assert body["refresh_token"] == tokens["refresh_token"]
    assert refresh(sandbox.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"]).status_code == 200
    # the previous access token stays valid until it expires
    assert get_payments(sandbox, tokens["access_token"]).status_code == 200
    assert get_payments(sandbox, body["access_token"]).status_code == 200


def test_http_basic_client_authentication(sandbox):
    code = code_for(sandbox)
    basic = base64.b64encode(f"{APP.client_id}:{APP.client_secret}".encode()).decode()
    resp = requests.post(sandbox.url("/oauth2/token"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
    }, headers={"Authorization": f"Basic {basic}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    wrong = base64.b64encode(f"{APP.client_id}:nope".encode()).decode()
    resp = requests.post(sandbox.url("/oauth2/token/"), data={"grant_type": "refresh_token", "refresh_token": "x"},
                         headers={"Authorization": f"Basic {wrong}"}, timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_rotation_issues_new_refresh_tokens_and_refuses_the_old(sandbox_factory):
    sb = sandbox_factory(rotate_refresh_tokens=True)
    first = obtain_tokens(sb, sb.merchants[0])
    second = refresh(sb.base_url, APP.client_id, APP.client_secret, first["refresh_token"])
    assert second.status_code == 200
    new_refresh = second.json()["refresh_token"]
    assert new_refresh != first["refresh_token"]
    old = refresh(sb.base_url, APP.client_id, APP.client_secret, first["refresh_token"])
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"
    assert "rotated" in old.json()["error_description"]
    third = refresh(sb.base_url, APP.client_id, APP.client_secret, new_refresh)
    assert third.status_code == 200 and third.json()["refresh_token"] != new_refresh


def test_rotation_can_be_switched_at_run_time(sandbox):
    tokens = obtain_tokens(sandbox, sandbox.merchants[0])
    sandbox.configure(rotate_refresh_tokens=True)
    rotated = refresh(sandbox.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]


def test_revoked_tokens_are_refused(sandbox):
    merchant, other = sandbox.merchants
    tokens = obtain_tokens(sandbox, merchant)
    other_tokens = obtain_tokens(sandbox, other)
    assert sandbox.revoke(merchant=merchant) == 2
    resp = get_payments(sandbox, tokens["access_token"])
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    resp = refresh(sandbox.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert "revoked" in resp.json()["error_description"]
    # the other merchant is untouched
    assert get_payments(sandbox, other_tokens["access_token"]).status_code == 200
    # through the admin API, one token at a time
    admin = requests.post(sandbox.url("/_sandbox/revoke"), json={"token": other_tokens["refresh_token"]}, timeout=30)
    assert admin.json() == {"revoked": 1}
    assert refresh(sandbox.base_url, APP.client_id, APP.client_secret, other_tokens["refresh_token"]).status_code == 400


def test_expired_code_is_refused(sandbox_factory):
    sb = sandbox_factory(code_ttl=0.2)
    code = code_for(sb)
    time.sleep(0.4)
    resp = exchange_code(sb.base_url, APP.client_id, APP.client_secret, code, REDIRECT)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "Authorization code has expired."}


def test_reused_code_is_refused_and_revokes_its_tokens(sandbox):
    code = code_for(sandbox)
    first = exchange_code(sandbox.base_url, APP.client_id, APP.client_secret, code, REDIRECT)
    assert first.status_code == 200
    second = exchange_code(sandbox.base_url, APP.client_id, APP.client_secret, code, REDIRECT)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert "already been used" in second.json()["error_description"]
    # RFC 6749 §4.1.2: what the code was exchanged for is revoked
    assert get_payments(sandbox, first.json()["access_token"]).status_code == 401


def test_code_is_bound_to_redirect_uri_and_client(sandbox):
    other = App("second-app", "second-secret", ("http://127.0.0.1:9999/cb",))
    sandbox.register_app(other)
    code = code_for(sandbox)
    resp = exchange_code(sandbox.base_url, APP.client_id, APP.client_secret, code, APP.redirect_uris[1])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    resp = exchange_code(sandbox.base_url, other.client_id, other.client_secret, code, REDIRECT)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_wrong_redirect_uri_shows_an_error_page_without_redirecting(sandbox):
    for uri in (REDIRECT + "x", REDIRECT.replace("8976", "8977"), REDIRECT + "?a=1", "https://evil.example/cb"):
        page = requests.get(authorize_url(sandbox.base_url, APP.client_id, uri, state="s"), allow_redirects=False,
                            timeout=30)
        assert page.status_code == 400, uri
        assert "Location" not in page.headers
        assert "not registered" in page.text


def test_unknown_client_shows_an_error_page(sandbox):
    page = requests.get(authorize_url(sandbox.base_url, "nobody", REDIRECT), allow_redirects=False, timeout=30)
    assert page.status_code == 400 and "Location" not in page.headers
    assert "Unknown client_id" in page.text


def test_deny_redirects_with_access_denied(sandbox):
    params = consent(sandbox.base_url, APP.client_id, REDIRECT, sandbox.merchants[0], state="st", decision="deny")
    assert params["error"] == "access_denied" and params["state"] == "st"
    assert "code" not in params


def test_bad_scope_and_response_type_redirect_with_errors(sandbox):
    with pytest.raises(ConsentError) as err:
        consent(sandbox.base_url, APP.client_id, REDIRECT, sandbox.merchants[0], scopes=["refunds:write"], state="q")
    assert err.value.params["error"] == "invalid_scope" and err.value.params["state"] == "q"
    page = requests.get(sandbox.url("/oauth2/authorize"), params={
        "client_id": APP.client_id, "redirect_uri": REDIRECT, "response_type": "token"}, allow_redirects=False,
        timeout=30)
    assert page.status_code == 302
    assert parse_qs(urlsplit(page.headers["Location"]).query)["error"] == ["unsupported_response_type"]


def test_stale_consent_form_is_refused(sandbox):
    resp = requests.post(sandbox.url("/oauth2/authorize/"), data={
        "request_id": "made-up", "merchant": sandbox.merchants[0], "decision": "approve"}, allow_redirects=False,
        timeout=30)
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_wrong_secret_and_unknown_client_are_401(sandbox):
    code = code_for(sandbox)
    resp = exchange_code(sandbox.base_url, APP.client_id, "wrong-secret", code, REDIRECT)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    resp = exchange_code(sandbox.base_url, "nobody", APP.client_secret, code, REDIRECT)
    assert resp.status_code == 401
    # the code was not consumed by the failed attempts
    assert exchange_code(sandbox.base_url, APP.client_id, APP.client_secret, code, REDIRECT).status_code == 200


def test_token_endpoint_request_errors(sandbox):
    base = {"client_id": APP.client_id, "client_secret": APP.client_secret}
    resp = token_post(sandbox, **base)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    resp = token_post(sandbox, grant_type="password", **base)
    assert (resp.status_code, resp.json()["error"]) == (400, "unsupported_grant_type")
    resp = token_post(sandbox, grant_type="refresh_token", refresh_token="made-up", **base)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_grant")
    resp = token_post(sandbox, grant_type="authorization_code", **base)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    assert requests.get(sandbox.url("/oauth2/token/"), timeout=30).status_code == 405


def test_refresh_can_narrow_scopes_but_not_widen(sandbox):
    tokens = obtain_tokens(sandbox, sandbox.merchants[0], scopes=["payments:read", "payouts:read"])
    assert tokens["scope"] == "payments:read payouts:read"
    narrow = token_post(sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                        client_id=APP.client_id, client_secret=APP.client_secret, scope="payouts:read")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "payouts:read"
    wide = token_post(sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                      client_id=APP.client_id, client_secret=APP.client_secret, scope="orders:read")
    assert (wide.status_code, wide.json()["error"]) == (400, "invalid_scope")


def test_expired_refresh_token_is_refused(sandbox_factory):
    sb = sandbox_factory(refresh_token_ttl=0.3)
    tokens = obtain_tokens(sb, sb.merchants[0])
    time.sleep(0.5)
    resp = refresh(sb.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"])
    assert resp.status_code == 400 and "expired" in resp.json()["error_description"]


def test_bearer_missing_invalid_expired(sandbox_factory):
    sb = sandbox_factory(access_token_ttl=0.3)
    for header in (None, "Bearer", "Basic abc", "Bearer not-a-token"):
        resp = get_payments(sb, None, header=header)
        assert resp.status_code == 401, header
        assert resp.json()["error"] == "invalid_token"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    tokens = obtain_tokens(sb, sb.merchants[0])
    assert tokens["expires_in"] == 1  # whole seconds, rounded up
    assert get_payments(sb, tokens["access_token"]).status_code == 200
    time.sleep(0.5)
    resp = get_payments(sb, tokens["access_token"])
    assert resp.status_code == 401 and "expired" in resp.json()["error_description"]
    fresh = refresh(sb.base_url, APP.client_id, APP.client_secret, tokens["refresh_token"]).json()
    assert get_payments(sb, fresh["access_token"]).status_code == 200


@pytest.mark.parametrize("path,scope", [
    ("/v2/user-info/", "user-info:read"),
    ("/v2/user-contact/", "user-contact:read"),
    ("/v2/payments/", "payments:read"),
    ("/v2/payouts/", "payouts:read"),
    ("/v2/products/", "products:read"),
    ("/v2/orders/", "orders:read"),
])
def test_each_endpoint_needs_its_scope(sandbox, path, scope):
    others = [s for s in ALL_SCOPES if s != scope]
    without = obtain_tokens(sandbox, sandbox.merchants[0], scopes=others)
    resp = requests.get(sandbox.url(path), headers={"Authorization": f"Bearer {without['access_token']}"}, timeout=30)
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_scope" and resp.json()["required_scope"] == scope
    with_scope = obtain_tokens(sandbox, sandbox.merchants[0], scopes=[scope])
    resp = requests.get(sandbox.url(path), headers={"Authorization": f"Bearer {with_scope['access_token']}"},
                        timeout=30)
    assert resp.status_code == 200


def test_apps_registered_from_config_and_admin_api(sandbox_factory):
    app = App("cfg-app", "cfg-secret", ("http://localhost:7000/cb",), scopes=("payments:read",))
    sb = sandbox_factory(apps=(app,))
    tokens = obtain_tokens(sb, sb.merchants[0], app=app)
    assert tokens["scope"] == "payments:read"
    with pytest.raises(ConsentError):  # not allowed for this app
        obtain_tokens(sb, sb.merchants[0], app=app, scopes=["orders:read"])
    resp = requests.post(sb.url("/_sandbox/apps"), json={
        "client_id": "late-app", "client_secret": "late-secret", "redirect_uris": ["http://127.0.0.1:7001/cb"]},
        timeout=30)
    assert resp.status_code == 200, resp.text
    late = App("late-app", "late-secret", ("http://127.0.0.1:7001/cb",))
    assert obtain_tokens(sb, sb.merchants[1], app=late)["access_token"]
