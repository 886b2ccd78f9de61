"""Faults injected per request rule or at a rate, switchable at run time; the per-token rate
limit; request statistics. No timing is asserted: faulted responses say which fault they are."""

from __future__ import annotations

import pytest
import requests

from instamojo_sandbox import DEMO_APP
from tests.oauth_flow import obtain_tokens, refresh


def test_429_with_retry_after_then_normal(client, sandbox):
    rule = sandbox.faults.add("error", endpoint="payments", status=429, retry_after=2)
    resp = client.get("/v2/payments/")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"
    assert resp.headers["X-Sandbox-Fault"] == "error"
    assert client.get("/v2/payments/").status_code == 200  # count defaults to 1
    assert sandbox.faults.list()[0]["fired"] == 1 and rule.exhausted


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_bursts(client, sandbox, status):
    sandbox.faults.add("error", endpoint="payouts", status=status, count=3)
    assert client.get("/v2/payments/").status_code == 200  # another endpoint is not affected
    codes = [client.get("/v2/payouts/").status_code for _ in range(4)]
    assert codes == [status, status, status, 200]
    if status == 503:
        assert sandbox.request_count(endpoint="payouts", status=503) == 3


def test_skip_merchant_and_path_patterns(sandbox, make_client):
    a, b = (make_client(sandbox, m) for m in sandbox.merchants)
    sandbox.faults.add("error", endpoint="*", path="/v2/orders/*", merchant=b.merchant, status=500, skip=1, count=1)
    assert a.get("/v2/orders/").status_code == 200
    assert b.get("/v2/orders/").status_code == 200  # skipped
    assert b.get("/v2/products/").status_code == 200  # path does not match
    assert b.get("/v2/orders/").status_code == 500
    assert b.get("/v2/orders/").status_code == 200


def test_rate_based_faults_are_reproducible(sandbox_factory, make_client):
    def run():
        sb = sandbox_factory(fault_seed=42)
        c = make_client(sb)
        sb.faults.add("error", endpoint="payments", status=503, rate=0.4, count=None)
        return [c.get("/v2/payments/").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert 503 in first and 200 in first


def test_slow_response_is_marked(client, sandbox):
    sandbox.faults.add("slow", endpoint="user_info", delay=0.2)
    resp = client.get("/v2/user-info/")
    assert resp.status_code == 200 and resp.headers["X-Sandbox-Fault"] == "slow"
    assert resp.json()["username"] == client.merchant


def test_added_latency_keeps_answers_right(sandbox_factory, make_client):
    sb = sandbox_factory(latency=0.05)
    c = make_client(sb)
    assert c.get("/v2/payments/").json()["count"] == len(sb.truth(c.merchant, "payments"))
    sb.configure(latency=0)
    assert sb.settings()["latency"] == 0


def test_connection_dropped_mid_body(client, sandbox):
    sandbox.faults.add("drop", endpoint="payments")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.get("/v2/payments/")
    # the client reconnects and the next request is whole
    assert client.get("/v2/payments/").json()["payments"]


def test_malformed_json(client, sandbox):
    sandbox.faults.add("malformed", endpoint="payments", count=2)
    for _ in range(2):
        resp = client.get("/v2/payments/")
        assert resp.status_code == 200 and resp.headers["X-Sandbox-Fault"] == "malformed"
        with pytest.raises(requests.exceptions.JSONDecodeError):
            resp.json()
    assert client.get("/v2/payments/").json()["count"] > 0


def test_token_expiring_mid_run(sandbox, client):
    assert client.get("/v2/payments/", page=1).status_code == 200
    sandbox.faults.add("expire_token", endpoint="payments", skip=1)
    assert client.get("/v2/payments/", page=2).status_code == 200
    resp = client.get("/v2/payments/", page=3)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    assert resp.headers["X-Sandbox-Fault"] == "expire_token"
    assert client.get("/v2/user-info/").status_code == 401  # the token itself expired
    fresh = refresh(sandbox.base_url, DEMO_APP.client_id, DEMO_APP.client_secret, client.tokens["refresh_token"])
    assert fresh.status_code == 200
    client.http.headers["Authorization"] = f"Bearer {fresh.json()['access_token']}"
    assert client.get("/v2/payments/", page=3).status_code == 200


def test_rate_limit_per_token(sandbox_factory):
    sb = sandbox_factory(rate_limit=0.2, rate_limit_burst=2)
    first = obtain_tokens(sb, sb.merchants[0])["access_token"]
    second = obtain_tokens(sb, sb.merchants[0])["access_token"]

    def get(token):
        return requests.get(sb.url("/v2/payouts/"), headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert [get(first).status_code for _ in range(2)] == [200, 200]
    limited = get(first)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "throttled" in limited.json()["detail"]
    assert get(second).status_code == 200  # per token
    sb.configure(rate_limit=None)
    assert get(first).status_code == 200


def test_oauth_endpoints_can_fail_too(sandbox):
    sandbox.faults.add("error", endpoint="oauth_token", status=503)
    resp = refresh(sandbox.base_url, DEMO_APP.client_id, DEMO_APP.client_secret, "whatever")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"


def test_faults_through_the_admin_api(client, sandbox):
    url = sandbox.url("/_sandbox/faults")
    rule = requests.post(url, json={"kind": "error", "endpoint": "orders", "status": 502, "count": None},
                         timeout=30).json()
    assert rule["id"] and rule["kind"] == "error"
    assert client.get("/v2/orders/").status_code == 502
    listed = requests.get(url, timeout=30).json()
    assert [r["id"] for r in listed] == [rule["id"]] and listed[0]["fired"] == 1
    assert requests.delete(f"{url}/{rule['id']}", timeout=30).json() == {"removed": rule["id"]}
    assert client.get("/v2/orders/").status_code == 200
    requests.post(url, json={"kind": "slow", "delay": 0.01}, timeout=30)
    assert requests.delete(url, timeout=30).json() == {"removed": "all"}
    bad = requests.post(url, json={"kind": "explode"}, timeout=30)
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]


def test_faults_from_config(sandbox_factory, make_client):
    sb = sandbox_factory(faults=({"kind": "error", "endpoint": "payments", "status": 500, "count": 2},))
    c = make_client(sb)
    assert [c.get("/v2/payments/").status_code for _ in range(3)] == [500, 500, 200]


def test_request_statistics(sandbox, client):
    sandbox.reset_stats()
    client.all("/v2/payments/", "payments")
    pages = -(-len(sandbox.truth(client.merchant, "payments")) // 25)
    client.get("/v2/payments/", page=999)
    assert sandbox.request_count(merchant=client.merchant, endpoint="payments") == pages + 1
    assert sandbox.request_count(merchant=client.merchant, endpoint="payments", status=404) == 1
    stats = requests.get(sandbox.url("/_sandbox/stats"), timeout=30).json()
    slot = stats["merchants"][client.merchant]["payments"]
    assert slot == {"requests": pages + 1, "statuses": {"200": pages, "404": 1}}
    assert stats["total"] == pages + 1
    requests.get(sandbox.url("/v2/payments/"), timeout=30)  # no token
    assert sandbox.stats()["merchants"]["-"]["payments"]["statuses"] == {"401": 1}
    assert requests.delete(sandbox.url("/_sandbox/stats"), timeout=30).json()["total"] == 0
    assert sandbox.request_count() == 0
    # a token exchange counts for the merchant it was for
    obtain_tokens(sandbox, sandbox.merchants[1])
    assert sandbox.request_count(merchant=sandbox.merchants[1], endpoint="oauth_token") == 1
    assert sandbox.request_count(endpoint="oauth_authorize") == 2  # the page and the form


def test_api_error_is_a_200_that_says_success_false(client, sandbox):
    sandbox.faults.add("api_error", endpoint="payments", message="Merchant account is under review.")
    resp = client.get("/v2/payments/")
    assert resp.status_code == 200 and resp.headers["X-Sandbox-Fault"] == "api_error"
    assert resp.json() == {"success": False, "message": "Merchant account is under review."}
    assert client.get("/v2/payments/").json()["success"] is True  # count defaults to 1


def test_api_error_with_a_reason_or_the_default_text(client, sandbox):
    sandbox.faults.add("api_error", endpoint="orders", reason="Rate limit exceeded for this account.")
    assert client.get("/v2/orders/").json() == {"success": False, "reason": "Rate limit exceeded for this account."}
    sandbox.faults.add("api_error", endpoint="products")
    body = client.get("/v2/products/").json()
    assert body["success"] is False and body["message"] and set(body) == {"success", "message"}
    both = sandbox.faults.add("api_error", endpoint="payouts", message="m", reason="r")
    assert client.get("/v2/payouts/").json() == {"success": False, "message": "m", "reason": "r"}
    assert both.exhausted


def test_api_error_over_the_admin_api_on_a_rate_and_on_the_token_endpoint(client, sandbox):
    rule = requests.post(sandbox.url("/_sandbox/faults"), json={"kind": "api_error", "endpoint": "payments",
                                                                "message": "Try later.", "count": None},
                         timeout=30).json()
    assert rule["kind"] == "api_error" and rule["message"] == "Try later."
    assert [client.get("/v2/payments/", page=p).json()["success"] for p in (1, 2)] == [False, False]
    assert sandbox.request_count(endpoint="payments", status=200) >= 2  # a 200, as the API would count it
    sandbox.faults.clear()
    sandbox.faults.add("api_error", endpoint="oauth_token", message="Token service is down.")
    resp = refresh(sandbox.base_url, DEMO_APP.client_id, DEMO_APP.client_secret, client.tokens["refresh_token"])
    assert resp.status_code == 200 and resp.json() == {"success": False, "message": "Token service is down."}
    assert refresh(sandbox.base_url, DEMO_APP.client_id, DEMO_APP.client_secret,
                   client.tokens["refresh_token"]).json()["access_token"]


def test_every_list_envelope_says_success_true(client, sandbox):
    slug = sandbox.truth(client.merchant, "products")[0]["slug"]
    for path in ("/v2/payments/", "/v2/payouts/", "/v2/products/", "/v2/orders/", f"/v2/products/{slug}/covers/"):
        body = client.get(path).json()
        assert body["success"] is True, path
        assert "message" not in body  # the SDKs model it as optional: only errors carry it
