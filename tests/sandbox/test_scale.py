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
