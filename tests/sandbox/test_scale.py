"""Concurrency and size: many readers while the clock moves; a large merchant (slow)."""

from __future__ import annotations

import threading

import pytest
import requests

from instamojo_sandbox import Sandbox, SandboxConfig
from tests.oauth_flow import obtain_tokens


def test_concurrent_readers_while_the_clock_advances(sandbox_factory):
    sb = sandbox_factory(page_size=10)
    tokens = {m: obtain_tokens(sb, m)["access_token"] for m in sb.merchants}
    failures: list[str] = []

    def read(merchant: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {tokens[merchant]}"
        for endpoint in ("payments", "orders", "payouts", "products") * 3:
            url = sb.url(f"/v2/{endpoint}/")
            while url:
                resp = session.get(url, timeout=30)
                if resp.status_code == 404 and resp.json() == {"detail": "Invalid page."}:
                    break  # newest first: the list grew under the reader, which is expected
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {url}")
                    break
                url = resp.json()["next"]

    threads = [threading.Thread(target=read, args=(m,)) for m in sb.merchants * 2]
    for t in threads:
        t.start()
    for _ in range(6):
        sb.advance(hours=8)
    for t in threads:
        t.join(120)
    assert not failures
    assert sb.request_count(status=500) == 0


@pytest.mark.slow
def test_a_large_merchant_is_served_whole_and_indexed():
    with Sandbox(SandboxConfig(profile="bench", payments=200_000, page_size=100)) as sb:
        merchant = sb.merchants[0]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {obtain_tokens(sb, merchant)['access_token']}"
        first = session.get(sb.url("/v2/payments/"), timeout=60).json()
        assert first["count"] == 200_000
        last = session.get(sb.url("/v2/payments/"), params={"page": 2000}, timeout=60).json()
        assert len(last["payments"]) == 100 and last["next"] is None
        payout = session.get(sb.url("/v2/payouts/"), timeout=60).json()["payouts"][-1]
        settled = sb.relations(merchant)["payouts"][payout["id"]]["settled"]
        body = session.get(sb.url("/v2/payments/"), params={"payout": payout["id"]}, timeout=60).json()
        assert body["count"] == len(settled) > 1000
        sb.advance(days=1)
        assert session.get(sb.url("/v2/payments/"), timeout=60).json()["count"] > 200_000


def _read_all(session: requests.Session, url: str, envelope: str) -> list[dict]:
    out: list[dict] = []
    while url:
        resp = session.get(url, timeout=120)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += body[envelope]
        url = body["next"]
    return out


def test_64_keep_alive_connections_at_once_across_many_merchants(sandbox_factory):
    sb = sandbox_factory(merchants=32, days=4, page_size=10)
    tokens = sb.issue_tokens_bulk()
    n = 64
    barrier = threading.Barrier(n)
    open_at_once: list[int] = []
    failures: list[str] = []

    def client(i: int) -> None:
        merchant = tokens[i % len(tokens)]
        session = requests.Session()  # one keep-alive connection per client
        session.headers["Authorization"] = f"Bearer {merchant['access_token']}"
        try:
            assert session.get(sb.url("/v2/user-info/"), timeout=120).json()["username"] == merchant["merchant"]
            barrier.wait(timeout=300)  # every client holds its connection open now
            if i == 0:
                open_at_once.append(sb._server.open_connections)
            barrier.wait(timeout=300)
            for endpoint in ("payments", "orders"):
                served = _read_all(session, sb.url(f"/v2/{endpoint}/"), endpoint)
                truth = sb.truth(merchant["merchant"], endpoint)
                assert sorted(r["id"] for r in served) == sorted(r["id"] for r in truth)
        except Exception as err:  # noqa: BLE001 - reported below, with the others
            failures.append(f"client {i}: {err!r}")
            barrier.abort()
        finally:
            session.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not failures, failures[:3]
    assert open_at_once and open_at_once[0] >= n
    assert sb.request_count(status=200) >= n * 3


def test_a_build_by_worker_processes_is_the_same_data():
    config = SandboxConfig(seed=9, profile="small", merchants=5, days=6, payments_per_day=15,
                           public_url="http://sandbox.test")  # the same URLs in both
    with Sandbox(config, build_workers=1) as one, Sandbox(config, build_workers=3) as three:
        for _ in range(2):
            for merchant in one.merchants:
                for endpoint in ("payments", "payouts", "products", "orders", "product_covers"):
                    assert one.truth(merchant, endpoint) == three.truth(merchant, endpoint)
                assert one.relations(merchant) == three.relations(merchant)
            one.advance(days=2, hours=3)
            three.advance(days=2, hours=3)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_merchants_are_built_and_served_concurrently():
    """The shape the many-merchant sync is benchmarked at (`make bench-merchants` builds 1,000):
    30 days, 20 payments a day, here 200 merchants. Every merchant gets tokens in one admin
    request; 64 of them are read over 64 connections at once."""
    config = SandboxConfig(profile="demo", merchants=200, days=30, payments_per_day=20)
    with Sandbox(config) as sb:
        tokens = requests.post(sb.url("/_sandbox/tokens"), json={"all": True}, timeout=300).json()
        assert len(tokens) == 200 and len({t["refresh_token"] for t in tokens}) == 200
        sample = tokens[::3][:64]
        failures: list[str] = []

        def read(entry: dict) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {entry['access_token']}"
            try:
                served = _read_all(session, sb.url("/v2/payments/?limit=500"), "payments")
                assert len(served) == len(sb.truth(entry["merchant"], "payments")) > 300
            except Exception as err:  # noqa: BLE001 - reported below
                failures.append(f"{entry['merchant']}: {err!r}")

        threads = [threading.Thread(target=read, args=(entry,)) for entry in sample]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not failures, failures[:3]
