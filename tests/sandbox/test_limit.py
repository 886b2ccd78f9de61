"""The ``limit`` query parameter on every list endpoint (Instamojo's SDKs: default 50 per page,
at most 500), the default page size, and the switch that makes the sandbox ignore ``limit``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from instamojo_sandbox import SandboxConfig
from instamojo_sandbox.__main__ import build_parser, config_from_args

LISTS = [("payments", "/v2/payments/"), ("payouts", "/v2/payouts/"), ("products", "/v2/products/"),
         ("orders", "/v2/orders/")]


def test_the_default_page_size_is_50():
    assert SandboxConfig().page_size == 50
    assert config_from_args(build_parser().parse_args(["serve"])).page_size == 50


def test_without_limit_pages_have_the_configured_size(sandbox_factory, make_client):
    sb = sandbox_factory()  # the default configuration: 50 a page
    c = make_client(sb)
    body = c.get("/v2/payments/").json()
    assert body["count"] > 100 and len(body["payments"]) == 50


@pytest.mark.parametrize("endpoint,path", LISTS)
def test_limit_sets_the_page_size_and_the_links_keep_it(client, sandbox, endpoint, path):
    truth = sandbox.truth(client.merchant, endpoint)
    limit = 3 if endpoint in ("payouts", "products") else 7
    assert len(truth) > 2 * limit
    first = client.get(path, limit=limit).json()
    assert first["count"] == len(truth) and len(first[endpoint]) == limit
    assert dict(parse_qsl(urlsplit(first["next"]).query)) == {"limit": str(limit), "page": "2"}
    second = client.get(first["next"]).json()
    assert len(second[endpoint]) == limit
    assert dict(parse_qsl(urlsplit(second["previous"]).query)) == {"limit": str(limit)}
    if endpoint == "orders":
        assert first["num_pages"] == -(-len(truth) // limit)
    served = client.all(path, endpoint, limit=limit)
    key = "slug" if endpoint == "products" else "id"
    assert sorted(r[key] for r in served) == sorted(r[key] for r in truth)


def test_limit_with_filters_and_on_the_covers_list(client, sandbox):
    payouts = sandbox.truth(client.merchant, "payouts")
    busiest = max(payouts, key=lambda p: len(sandbox.relations(client.merchant)["payouts"][p["id"]]["settled"]))
    settled = sandbox.relations(client.merchant)["payouts"][busiest["id"]]["settled"]
    body = client.get("/v2/payments/", payout=busiest["id"], limit=2).json()
    assert body["count"] == len(settled) and len(body["payments"]) == 2
    assert dict(parse_qsl(urlsplit(body["next"]).query)) == {"payout": busiest["id"], "limit": "2", "page": "2"}
    covers = sandbox.truth(client.merchant, "product_covers")
    slug = max(covers, key=lambda s: len(covers[s]))
    assert len(covers[slug]) >= 2
    page = client.get(f"/v2/products/{slug}/covers/", limit=1).json()
    assert page["count"] == len(covers[slug]) and page["covers"] == covers[slug][:1] and page["next"]


def test_limit_is_capped_at_max_limit(sandbox_factory, make_client):
    sb = sandbox_factory(payments_per_day=40)  # about 800 payments for the first merchant
    c = make_client(sb)
    n = len(sb.truth(c.merchant, "payments"))
    assert n > 500
    body = c.get("/v2/payments/", limit=1000).json()
    assert len(body["payments"]) == 500 and body["count"] == n
    assert "limit=1000" in body["next"]  # the links carry the request's own query
    assert len(c.get(body["next"]).json()["payments"]) == min(500, n - 500)
    assert len(c.get("/v2/payments/", limit=500).json()["payments"]) == 500
    sb.configure(max_limit=30)
    assert len(c.get("/v2/payments/", limit=1000).json()["payments"]) == 30
    assert len(c.get("/v2/payments/", limit=29).json()["payments"]) == 29


@pytest.mark.parametrize("value,message", [
    ("abc", "A valid integer is required."),
    ("2.5", "A valid integer is required."),
    ("0", "Ensure this value is greater than or equal to 1."),
    ("-3", "Ensure this value is greater than or equal to 1."),
])
def test_an_invalid_limit_is_a_400_like_any_invalid_parameter(client, value, message):
    resp = client.get("/v2/payments/", limit=value)
    assert resp.status_code == 400 and resp.json() == {"limit": [message]}
    both = client.get("/v2/orders/", limit=value, created_after="yesterday")
    assert both.status_code == 400 and set(both.json()) == {"limit", "created_after"}


def test_an_empty_limit_is_ignored(client):
    assert len(client.get("/v2/payments/", limit="").json()["payments"]) == 25


def test_an_api_that_ignores_limit(sandbox_factory, make_client):
    sb = sandbox_factory(page_size=20, honour_limit=False)
    c = make_client(sb)
    body = c.get("/v2/payments/", limit=5).json()
    assert len(body["payments"]) == 20  # the configured page size, whatever was asked
    assert "limit=5" in body["next"]  # still carried, as any unknown parameter
    assert c.get("/v2/payments/", limit="junk").status_code == 200  # not even validated
    served = c.all("/v2/payments/", "payments", limit=5)
    assert sorted(p["id"] for p in served) == sorted(p["id"] for p in sb.truth(c.merchant, "payments"))


def test_limit_settings_at_run_time_and_over_the_admin_api(sandbox, client):
    url = sandbox.url("/_sandbox/config")
    assert requests.get(url, timeout=30).json()["honour_limit"] is True
    changed = requests.patch(url, json={"honour_limit": False, "max_limit": 40}, timeout=30).json()
    assert (changed["honour_limit"], changed["max_limit"]) == (False, 40)
    assert len(client.get("/v2/payments/", limit=5).json()["payments"]) == 25
    requests.patch(url, json={"honour_limit": True}, timeout=30)
    assert len(client.get("/v2/payments/", limit=5).json()["payments"]) == 5
    assert len(client.get("/v2/payments/", limit=100).json()["payments"]) == 40
    bad = requests.patch(url, json={"max_limit": 0}, timeout=30)
    assert bad.status_code == 400 and "max_limit" in bad.json()["error"]
    assert requests.patch(url, json={"honour_limit": "maybe"}, timeout=30).status_code == 400


def test_limit_options_on_the_command_line():
    config = config_from_args(build_parser().parse_args(["serve", "--ignore-limit", "--max-limit", "200",
                                                         "--page-size", "100"]))
    assert (config.honour_limit, config.max_limit, config.page_size) == (False, 200, 100)


def test_a_duplicate_across_pages_at_the_limit_a_client_asks_for(client, sandbox):
    record = sandbox.anomalies.inject("duplicate_across_pages", merchant=client.merchant, page_size=10)
    first = client.get("/v2/payments/", limit=10).json()
    second = client.get(first["next"]).json()
    assert first["payments"][-1]["id"] == record["id"] == second["payments"][0]["id"]
    assert record["page_size"] == 10
