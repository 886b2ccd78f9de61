"""The sandbox clock: advancing it makes new records appear, pending payments resolve, payments
get paid out and pending orders become paid; advancing is path-independent."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import requests

from instamojo_sandbox import Sandbox, SandboxConfig
from instamojo_sandbox.rules import IST, settlement_date
from instamojo_sandbox.timeutil import parse_instant
from tests.sandbox.test_data import ENDPOINTS, dataset


def by_id(records, key="id"):
    return {r[key]: r for r in records}


def test_default_clock_is_fixed_and_history_ends_there(sandbox):
    assert sandbox.now == dt.datetime(2024, 11, 17, 18, 30, tzinfo=dt.UTC)  # midnight in India
    for merchant in sandbox.merchants:
        for p in sandbox.truth(merchant, "payments"):
            assert parse_instant(p["created_at"]) <= sandbox.now
            assert parse_instant(p["updated_at"]) <= sandbox.now


def test_advancing_brings_new_records_resolutions_payouts_and_paid_orders(sandbox_factory, make_client):
    # busier than the small profile, so that orders paid days late are certain to be in flight
    sandbox = sandbox_factory(payments_per_day=60, days=10, page_size=50)
    client = make_client(sandbox)
    merchant = client.merchant
    before = {e: by_id(sandbox.truth(merchant, e), "slug" if e == "products" else "id")
              for e in ("payments", "payouts", "orders", "products")}
    first_page = client.get("/v2/payments/").json()
    sandbox.advance(days=6)
    after = {e: by_id(sandbox.truth(merchant, e), "slug" if e == "products" else "id")
             for e in ("payments", "payouts", "orders", "products")}

    for endpoint in ("payments", "payouts", "orders"):
        assert set(before[endpoint]) < set(after[endpoint]), endpoint
    # newest first: the first page now starts with records created after the old clock
    assert client.get("/v2/payments/").json()["payments"][0]["id"] not in before["payments"]
    assert client.get("/v2/payments/").json()["count"] == len(after["payments"]) > first_page["count"]

    changed = {pid for pid, p in before["payments"].items() if after["payments"][pid] != p}
    assert changed, "some existing payments changed"
    for pid in changed:
        assert after["payments"][pid]["updated_at"] > before["payments"][pid]["updated_at"]
        assert after["payments"][pid]["created_at"] == before["payments"][pid]["created_at"]
    paid_out = [pid for pid, p in before["payments"].items()
                if p["payout"] is None and after["payments"][pid]["payout"] is not None]
    assert paid_out, "payments pending settlement got their payout"
    for pid in paid_out:
        payout_url = after["payments"][pid]["payout"]
        assert payout_url in {p["resource_uri"] for p in after["payouts"].values()}
        assert after["payments"][pid]["status"] is True
    became_paid = [oid for oid, o in before["orders"].items()
                   if o["order_status"] == "Pending" and after["orders"][oid]["order_status"] == "Fully Paid"]
    assert became_paid, "a pending order became paid"
    # the pending filter follows
    pending_now = {o["id"] for o in client.all("/v2/orders/", "orders", pending="1")}
    assert not pending_now & set(became_paid)
    # a payment still pending at midnight is an abandoned checkout: it stays pending
    assert all(after["payments"][pid]["status"] is None for pid, p in before["payments"].items()
               if p["status"] is None)


def test_pending_payment_resolves_when_its_time_comes(sandbox):
    # the same history, with the clock stopped a microsecond after a payment was made
    target = next(p for p in sandbox.truth(sandbox.merchants[0], "payments")[50:] if p["status"] is True)
    created = parse_instant(target["created_at"])
    first_day = sandbox.now.astimezone(IST).date() - dt.timedelta(days=sandbox.config.n_days)
    now = created + dt.timedelta(microseconds=1)
    with Sandbox(SandboxConfig(now=now, days=(now.astimezone(IST).date() - first_day).days)) as sb:
        pending = {p["id"]: p for p in sb.truth(sb.merchants[0], "payments")}[target["id"]]
        assert pending["status"] is None and pending["fees"] == "0.00" and pending["tax_invoice_id"] is None
        assert pending["updated_at"] == pending["created_at"]
        sb.advance(hours=7)
        resolved = {p["id"]: p for p in sb.truth(sb.merchants[0], "payments")}[target["id"]]
        assert resolved["status"] is True and resolved["fees"] == target["fees"]
        assert resolved["tax_invoice_id"] == target["tax_invoice_id"]
        assert resolved["updated_at"] > resolved["created_at"]


def test_payout_appears_at_its_time_of_day(sandbox_factory):
    sb = sandbox_factory()
    merchant = sb.merchants[0]
    waiting = [p for p in sb.truth(merchant, "payments") if p["status"] is True and p["payout"] is None]
    due = min(settlement_date(parse_instant(p["created_at"])) for p in waiting)
    sb.advance_to(dt.datetime(due.year, due.month, due.day, 10, 59, tzinfo=IST))
    assert all(p["payout"] is None for p in sb.truth(merchant, "payments") if p["id"] in {w["id"] for w in waiting})
    sb.advance_to(dt.datetime(due.year, due.month, due.day, 23, 0, tzinfo=IST))
    now_paid = {p["id"] for p in sb.truth(merchant, "payments") if p["payout"]}
    expected = {p["id"] for p in waiting if settlement_date(parse_instant(p["created_at"])) == due}
    assert expected and expected <= now_paid


def test_two_days_at_once_equals_one_day_twice():
    with Sandbox(SandboxConfig(seed=3)) as once, Sandbox(SandboxConfig(seed=3)) as twice, \
            Sandbox(SandboxConfig(seed=3)) as hourly:
        once.advance(days=2)
        twice.advance(days=1)
        twice.advance(days=1)
        for _ in range(8):
            hourly.advance(hours=6)
        assert once.now == twice.now == hourly.now
        assert dataset(once) == dataset(twice) == dataset(hourly)


def test_a_sandbox_started_later_equals_one_advanced_to_then():
    later = dt.datetime(2024, 11, 20, 18, 30, tzinfo=dt.UTC)
    with Sandbox(SandboxConfig(seed=4, days=24)) as advanced, Sandbox(SandboxConfig(seed=4, days=27, now=later)) as fresh:
        advanced.advance_to(later)
        assert dataset(advanced) == dataset(fresh)


def test_clock_never_goes_back(sandbox):
    resp = requests.post(sandbox.url("/_sandbox/clock/advance"), json={"to": "2020-01-01T00:00:00Z"}, timeout=30)
    assert resp.status_code == 400 and "only moves forward" in resp.json()["error"]


def test_admin_clock_and_cli_advance(sandbox):
    start = requests.get(sandbox.url("/_sandbox/clock"), timeout=30).json()["now"]
    assert start == "2024-11-17T18:30:00.000000Z"
    body = requests.post(sandbox.url("/_sandbox/clock/advance"), json={"hours": 12}, timeout=30).json()
    assert body["now"] == "2024-11-18T06:30:00.000000Z"
    out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "advance", "--url", sandbox.base_url,
                          "--days", "1", "--hours", "2"], capture_output=True, text=True, timeout=60, check=True)
    assert '"now": "2024-11-19T08:30:00.000000Z"' in out.stdout
    assert sandbox.now == dt.datetime(2024, 11, 19, 8, 30, tzinfo=dt.UTC)
    body = requests.post(sandbox.url("/_sandbox/clock/advance"), json={"to": "2024-11-20T00:00:00+05:30"},
                         timeout=30).json()
    assert body["now"] == "2024-11-19T18:30:00.000000Z"


def test_tokens_survive_clock_advances(sandbox, client):
    sandbox.advance(days=30)
    assert client.get("/v2/payments/").status_code == 200


def test_truth_endpoints_cover_everything(sandbox):
    for merchant in sandbox.merchants:
        for endpoint in ENDPOINTS:
            via_http = requests.get(sandbox.url(f"/_sandbox/truth/{merchant}/{endpoint}"), timeout=30).json()
            assert via_http == sandbox.truth(merchant, endpoint)
