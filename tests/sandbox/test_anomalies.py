"""Each anomaly is absent by default, present exactly when injected, recorded in the ground truth
with its ids and amounts, and survives clock advances."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, InvalidOperation

import pytest
import requests

from instamojo_sandbox import ANOMALY_KINDS, AnomalyError
from instamojo_sandbox.rules import payout_identity_residual

KNOWN_PAYMENT_FIELDS = {"id", "title", "payment_type", "status", "link", "product", "seller", "currency", "amount",
                        "name", "email", "phone", "payout", "fees", "total_taxes", "cases", "instrument_type",
                        "billing_instrument", "failure", "created_at", "updated_at", "tax_invoice_id", "resource_uri"}
MONEY = {"payments": ("amount", "fees", "total_taxes"), "orders": ("amount",),
         "payouts": ("paid_amount", "sales_amount", "fee_amount", "total_tax_amount", "held_amount",
                     "reversed_amount", "refunded_amount", "affiliate_commission_amount",
                     "partner_commission_amount", "shipping_fee")}


def find_anomalies(sb, merchant) -> dict[str, list]:
    """Look for every anomaly kind in the served data, the way a quality check would."""
    found: dict[str, list] = {k: [] for k in ANOMALY_KINDS}
    payments = sb.truth(merchant, "payments")
    payouts = {p["resource_uri"] for p in sb.truth(merchant, "payouts")}
    for p in payments:
        if p["payout"] and p["payout"] not in payouts:
            found["orphan_payment"].append(p["id"])
        if set(p) - KNOWN_PAYMENT_FIELDS:
            found["unknown_field"].append(p["id"])
    for p in sb.truth(merchant, "payouts"):
        try:
            if payout_identity_residual(p) != 0:
                found["unbalanced_payout"].append(p["id"])
        except InvalidOperation:
            pass
    for endpoint, fields in MONEY.items():
        for record in sb.truth(merchant, endpoint):
            for field in fields:
                try:
                    Decimal(record[field])
                except InvalidOperation:
                    found["non_numeric_amount"].append(record["id"])
    for order in sb.truth(merchant, "orders"):
        paid = sum((Decimal(p["amount"]) for p in order["payments"] if p["status"] == "Success"), Decimal(0))
        if order["order_status"] == "Fully Paid" and paid < Decimal(order["amount"]):
            found["short_paid_order"].append(order["id"])
    return found


def served_ids(client, endpoint) -> list[str]:
    return [r["id"] for r in client.all(f"/v2/{endpoint}/", endpoint)]


def test_no_anomaly_by_default(sandbox, client):
    for merchant in sandbox.merchants:
        assert all(not v for v in find_anomalies(sandbox, merchant).values()), merchant
    ids = served_ids(client, "payments")
    assert len(ids) == len(set(ids))
    assert sandbox.anomalies.list() == []


def test_orphan_payment(sandbox, client):
    record = sandbox.anomalies.inject("orphan_payment", amount="1234.50")
    assert record["merchant"] == client.merchant and record["amount"] == "1234.50"
    found = find_anomalies(sandbox, client.merchant)
    assert found["orphan_payment"] == [record["payment_id"]]
    assert sum(bool(v) for v in found.values()) == 1
    served = client.get("/v2/payments/", id=record["payment_id"]).json()["payments"][0]
    assert served["payout"].endswith(f"/v2/payouts/{record['payout_id']}/")
    assert served["status"] is True and served["amount"] == "1234.50"
    assert client.get(served["payout"]).status_code == 404
    assert [p["id"] for p in client.all("/v2/payments/", "payments", payout=record["payout_id"])] == [
        record["payment_id"]]
    assert record["payment_id"] in served_ids(client, "payments")


def test_unbalanced_payout(sandbox, client):
    record = sandbox.anomalies.inject("unbalanced_payout", delta="-37.25")
    found = find_anomalies(sandbox, client.merchant)
    assert found["unbalanced_payout"] == [record["payout_id"]]
    payout = client.get("/v2/payouts/", id=record["payout_id"]).json()["payouts"][0]
    assert payout_identity_residual(payout) == Decimal("-37.25") == Decimal(record["residual"])
    assert payout["paid_amount"] == record["value"]


def test_short_paid_order(sandbox, client):
    record = sandbox.anomalies.inject("short_paid_order")
    assert Decimal(record["shortfall"]) > 0
    assert find_anomalies(sandbox, client.merchant)["short_paid_order"] == [record["order_id"]]
    order = client.get(f"/v2/orders/{record['order_id']}/").json()
    assert order["order_status"] == "Fully Paid"
    paid = sum((Decimal(p["amount"]) for p in order["payments"] if p["status"] == "Success"), Decimal(0))
    assert Decimal(order["amount"]) - paid == Decimal(record["shortfall"])


def test_duplicate_across_pages(sandbox, client):
    before = served_ids(client, "payments")
    record = sandbox.anomalies.inject("duplicate_across_pages", endpoint="payments", page=2)
    page2 = client.get("/v2/payments/", page=2).json()["payments"]
    page3 = client.get("/v2/payments/", page=3).json()["payments"]
    assert page2[-1]["id"] == page3[0]["id"] == record["id"]
    after = served_ids(client, "payments")
    assert Counter(after) - Counter(before) == Counter({record["id"]: 1})
    assert client.get("/v2/payments/").json()["count"] == len(before) + 1
    # the ground truth keeps each record once
    assert len(sandbox.truth(client.merchant, "payments")) == len(before)


def test_unknown_field(sandbox, client):
    record = sandbox.anomalies.inject("unknown_field", field="settlement_utr", value="UTR123", count=3)
    assert len(record["ids"]) == 3
    assert sorted(find_anomalies(sandbox, client.merchant)["unknown_field"]) == sorted(record["ids"])
    first = client.get("/v2/payments/").json()["payments"]
    assert [p["settlement_utr"] for p in first[:3]] == ["UTR123"] * 3
    assert "settlement_utr" not in first[3]


def test_non_numeric_amount(sandbox, client):
    record = sandbox.anomalies.inject("non_numeric_amount")
    assert record["field"] == "amount" and record["value"] == "N/A"
    assert Decimal(record["original"]) > 0
    assert find_anomalies(sandbox, client.merchant)["non_numeric_amount"] == [record["id"]]
    assert client.get(f"/v2/payments/{record['id']}/").json()["amount"] == "N/A"
    payout = sandbox.anomalies.inject("non_numeric_amount", endpoint="payouts", field="fee_amount", value="")
    assert client.get(f"/v2/payouts/{payout['id']}/").json()["fee_amount"] == ""


def test_anomalies_are_per_merchant_and_listed_in_truth(sandbox):
    other = sandbox.merchants[1]
    record = sandbox.anomalies.inject("orphan_payment", merchant=other)
    assert find_anomalies(sandbox, sandbox.merchants[0])["orphan_payment"] == []
    assert find_anomalies(sandbox, other)["orphan_payment"] == [record["payment_id"]]
    assert sandbox.relations(other)["anomalies"] == [record]
    assert sandbox.relations(sandbox.merchants[0])["anomalies"] == []
    assert requests.get(sandbox.url("/_sandbox/anomalies"), timeout=30).json() == [record]


def test_anomalies_survive_clock_advances(sandbox_factory):
    sb = sandbox_factory(payments_per_day=40, days=10)
    merchant = sb.merchants[0]
    # the newest payment is still waiting for its payout: its re-render must keep the patch
    newest = sb.truth(merchant, "payments")[-1]
    assert newest["status"] is True and newest["payout"] is None
    sb.anomalies.inject("non_numeric_amount", id=newest["id"])
    sb.anomalies.inject("unknown_field")
    sb.advance(days=7)
    now = {p["id"]: p for p in sb.truth(merchant, "payments")}[newest["id"]]
    assert now["payout"] is not None and now["amount"] == "N/A"
    assert len(find_anomalies(sb, merchant)["unknown_field"]) == 1


def test_injected_through_config_and_admin_api(sandbox_factory):
    sb = sandbox_factory(anomalies=({"kind": "unbalanced_payout"}, {"kind": "orphan_payment", "merchant": "chai_point_co"}))
    assert [a["kind"] for a in sb.anomalies.list()] == ["unbalanced_payout", "orphan_payment"]
    resp = requests.post(sb.url("/_sandbox/anomalies"), json={"kind": "short_paid_order"}, timeout=30)
    assert resp.status_code == 200 and resp.json()["order_id"]
    resp = requests.post(sb.url("/_sandbox/anomalies"), json={"kind": "volcano"}, timeout=30)
    assert resp.status_code == 400 and "unknown anomaly" in resp.json()["error"]


def test_impossible_anomaly_says_why(sandbox):
    with pytest.raises(AnomalyError, match="too few"):
        sandbox.anomalies.inject("duplicate_across_pages", endpoint="payouts", page=50)
