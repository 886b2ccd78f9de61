"""The generated data: determinism, the published business rules (fees, GST, T+3 business days in
Asia/Kolkata), the payout identity, held/released/refunded, statuses and instruments."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest

from instamojo_sandbox import Sandbox, SandboxConfig
from instamojo_sandbox.rules import (
    IST,
    add_business_days,
    fees_for,
    is_business_day,
    payout_identity_residual,
    settlement_date,
)
from instamojo_sandbox.timeutil import parse_instant

ENDPOINTS = ("payments", "payouts", "products", "orders", "product_covers", "user_info", "user_contact")


def strip_base(obj, base: str):
    """Records with the base URL (which differs between two sandboxes) taken out."""
    if isinstance(obj, dict):
        return {k: strip_base(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strip_base(v, base) for v in obj]
    if isinstance(obj, str):
        return obj.replace(base, "<base>")
    return obj


def dataset(sb: Sandbox) -> dict:
    return {(m, e): strip_base(sb.truth(m, e), sb.base_url) for m in sb.merchants for e in ENDPOINTS}


def test_same_seed_same_data_other_seed_other_data():
    with Sandbox(SandboxConfig(seed=5)) as a, Sandbox(SandboxConfig(seed=5)) as b, Sandbox(SandboxConfig(seed=6)) as c:
        assert dataset(a) == dataset(b)
        assert strip_base(a.relations(None), a.base_url) == strip_base(b.relations(None), b.base_url)
        assert dataset(a)[(a.merchants[0], "payments")] != dataset(c)[(c.merchants[0], "payments")]


# -- fees and GST ---------------------------------------------------------------------------------


def test_fee_rules_published_example():
    fee, tax = fees_for(Decimal("1000.00"), False)
    assert (fee, tax) == (Decimal("23.00"), Decimal("4.14"))
    assert Decimal("1000.00") - fee - tax == Decimal("972.86")
    fee, tax = fees_for(Decimal("1000.00"), True)  # international / Amex: 3% + ₹3
    assert (fee, tax) == (Decimal("33.00"), Decimal("5.94"))
    # rounding half-up to the paisa: 2% of 0.25 = 0.005 → 0.01
    assert fees_for(Decimal("0.25"), False) == (Decimal("3.01"), Decimal("0.54"))


def test_every_payment_fee_follows_its_instrument(sandbox):
    international = {"International Regular Credit Card (Visa/Mastercard)",
                     "International Regular Debit Card (Visa/Mastercard)", "Amex Card"}
    checked = Counter()
    for merchant in sandbox.merchants:
        for p in sandbox.truth(merchant, "payments"):
            if p["status"] is True:
                fee, tax = fees_for(Decimal(p["amount"]), p["billing_instrument"] in international)
                assert (p["fees"], p["total_taxes"]) == (str(fee), str(tax)), p
                checked[p["billing_instrument"] in international] += 1
            else:
                assert (p["fees"], p["total_taxes"]) == ("0.00", "0.00"), p
                assert p["payout"] is None and p["tax_invoice_id"] is None
    assert checked[True] and checked[False]


def test_statuses_instruments_and_failures(sandbox_factory):
    sb = sandbox_factory(days=40)
    payments = [p for m in sb.merchants for p in sb.truth(m, "payments")]
    statuses = Counter(p["status"] for p in payments)
    assert statuses[True] > statuses[False] > 0 and statuses[None] > 0
    assert {p["instrument_type"] for p in payments} == {"CARD", "UPI", "NETBANKING", "WALLET", "EMI"}
    for p in payments:
        if p["status"] is False:
            assert set(p["failure"]) == {"reason", "message"} and p["failure"]["reason"].isupper()
        else:
            assert p["failure"] is None
        assert p["currency"] == "INR" and p["name"] and "@" in p["email"] and p["phone"].startswith("+91")
        assert p["updated_at"] >= p["created_at"]


# -- settlement -----------------------------------------------------------------------------------


def test_settlement_calendar_across_weekends_and_indian_holidays():
    # Diwali: Thursday 31 October 2024; Gandhi Jayanti: Wednesday 2 October 2024
    assert not is_business_day(dt.date(2024, 10, 31))
    assert not is_business_day(dt.date(2024, 10, 2))
    assert not is_business_day(dt.date(2024, 11, 2))  # a Saturday
    # Monday 28 Oct → Tue 29, Wed 30, (Diwali), Fri 1 Nov
    assert add_business_days(dt.date(2024, 10, 28), 3) == dt.date(2024, 11, 1)
    # Wednesday 30 Oct → (Diwali), Fri 1, (weekend), Mon 4, Tue 5
    assert add_business_days(dt.date(2024, 10, 30), 3) == dt.date(2024, 11, 5)
    # Tuesday 29 Oct → Wed 30, (Diwali), Fri 1, (weekend), Mon 4
    assert add_business_days(dt.date(2024, 10, 29), 3) == dt.date(2024, 11, 4)
    # Asia/Kolkata, not UTC: 19:00 UTC on Tuesday 29 Oct is 00:30 on Wednesday 30 Oct in India
    assert settlement_date(dt.datetime(2024, 10, 29, 19, 0, tzinfo=dt.UTC)) == dt.date(2024, 11, 5)
    assert settlement_date(dt.datetime(2024, 10, 29, 18, 0, tzinfo=dt.UTC)) == dt.date(2024, 11, 4)


def test_payments_are_paid_out_t_plus_3_business_days_in_india(sandbox):
    crossed_holiday = crossed_weekend = 0
    for merchant in sandbox.merchants:
        payouts = {p["resource_uri"]: p for p in sandbox.truth(merchant, "payouts")}
        for p in sandbox.truth(merchant, "payments"):
            if p["payout"] is None:
                continue
            created = parse_instant(p["created_at"])
            paid_day = parse_instant(payouts[p["payout"]]["paid_out_at"]).astimezone(IST).date()
            assert paid_day == settlement_date(created), p["id"]
            created_day = created.astimezone(IST).date()
            span = [created_day + dt.timedelta(days=i) for i in range(1, (paid_day - created_day).days)]
            crossed_holiday += any(d == dt.date(2024, 10, 31) for d in span)
            crossed_weekend += any(d.weekday() >= 5 for d in span)
    assert crossed_holiday and crossed_weekend, "the default history crosses Diwali and weekends"


def test_successful_payments_wait_for_their_payout_day(sandbox):
    now_ist = sandbox.now.astimezone(IST)
    for merchant in sandbox.merchants:
        for p in sandbox.truth(merchant, "payments"):
            if p["status"] is True and p["payout"] is None:
                due = settlement_date(parse_instant(p["created_at"]))
                assert due >= now_ist.date(), p["id"]


# -- payouts --------------------------------------------------------------------------------------


def test_every_payout_obeys_the_documented_identity(sandbox_factory):
    sb = sandbox_factory(days=60)
    n = 0
    for merchant in sb.merchants:
        for payout in sb.truth(merchant, "payouts"):
            assert payout_identity_residual(payout) == 0, payout
            assert payout["status"] is True and payout["payout_type"] == 0
            assert Decimal(payout["paid_amount"]) >= 0
            n += 1
    assert n > 50


def test_payout_figures_match_their_payments(sandbox_factory):
    sb = sandbox_factory(days=60)
    seen = Counter()
    for merchant in sb.merchants:
        payments = {p["id"]: p for p in sb.truth(merchant, "payments")}
        rel = sb.relations(merchant)
        for payout in sb.truth(merchant, "payouts"):
            links = rel["payouts"][payout["id"]]
            settled = [payments[i] for i in links["settled"]]
            assert all(p["payout"] == payout["resource_uri"] for p in settled)
            assert sum((Decimal(p["amount"]) for p in settled), Decimal(0)) == Decimal(payout["sales_amount"])
            assert sum((Decimal(p["fees"]) for p in settled), Decimal(0)) == Decimal(payout["fee_amount"])
            assert sum((Decimal(p["total_taxes"]) for p in settled), Decimal(0)) == Decimal(payout["total_tax_amount"])

            def net(pid, payments=payments):
                p = payments[pid]
                return Decimal(p["amount"]) - Decimal(p["fees"]) - Decimal(p["total_taxes"])

            assert sum((net(i) for i in links["held"]), Decimal(0)) == Decimal(payout["held_amount"])
            reversed_ = links["released"] + links["held_refunded"]
            assert sum((net(i) for i in reversed_), Decimal(0)) == Decimal(payout["reversed_amount"])
            refunded = links["held_refunded"] + links["refunded"]
            assert sum((Decimal(payments[i]["amount"]) for i in refunded), Decimal(0)) == Decimal(payout["refunded_amount"])
            for role in ("held", "released", "held_refunded", "refunded"):
                seen[role] += len(links[role])
            # every payment settled by a payout is listed by the payout filter, and only those
            assert set(links["settled"]) == {p["id"] for p in payments.values() if p["payout"] == payout["resource_uri"]}
        # a held payment is released or refunded in a later payout, never earlier
        order = {pid: rel["payouts"][pid]["paid_out_at"] for pid in rel["payouts"]}
        for info in rel["payments"].values():
            if info["released_in"]:
                assert info["held"] and order[info["released_in"]] > order[info["settled_in"]]
            if info["refunded_in"] and info["settled_in"]:
                assert order[info["refunded_in"]] > order[info["settled_in"]]
    assert seen["held"] and seen["released"] and seen["refunded"] and seen["held_refunded"], seen


def test_refunded_payments_show_a_case(sandbox_factory):
    sb = sandbox_factory(days=60)
    for merchant in sb.merchants:
        rel = sb.relations(merchant)
        payments = {p["id"]: p for p in sb.truth(merchant, "payments")}
        refunded = [pid for pid, info in rel["payments"].items() if info["refunded_in"]]
        assert refunded
        for pid in refunded:
            assert len(payments[pid]["cases"]) == 1 and "/v2/cases/" in payments[pid]["cases"][0]


# -- orders and products --------------------------------------------------------------------------


def test_orders_are_consistent_with_their_payments_and_items(sandbox):
    statuses = Counter()
    for merchant in sandbox.merchants:
        payments = {p["id"]: p for p in sandbox.truth(merchant, "payments")}
        for order in sandbox.truth(merchant, "orders"):
            assert order["items"]
            item_total = Decimal(0)
            for item in order["items"]:
                expected = Decimal(item["unit_price"]) * item["quantity"]
                expected += Decimal(item["shipping_charges"] or 0) - Decimal(item["discount"] or 0)
                assert Decimal(item["amount"]) == expected
                assert item["order"].endswith(f"/v2/orders/{order['id']}/")
                assert all(set(v) == {"name", "value"} for v in item["variants"])
                item_total += expected
            assert Decimal(order["amount"]) == item_total
            paid = Decimal(0)
            for nested in order["payments"]:
                payment = payments[nested["payment_id"]]
                status = {True: "Success", False: "Failed", None: "Pending"}[payment["status"]]
                assert nested["status"] == status and nested["amount"] == payment["amount"]
                if status == "Success":
                    paid += Decimal(payment["amount"])
            expected_status = ("Fully Paid" if paid >= Decimal(order["amount"]) else
                               "Partially Paid" if paid > 0 else "Pending")
            assert order["order_status"] == expected_status
            statuses[expected_status] += 1
    assert statuses["Fully Paid"] and statuses["Pending"]
    assert any(item["variants"] for m in sandbox.merchants for o in sandbox.truth(m, "orders") for item in o["items"])


def test_every_merchant_has_a_partially_paid_order(sandbox):
    for merchant in sandbox.merchants:
        assert any(o["order_status"] == "Partially Paid" for o in sandbox.truth(merchant, "orders")), merchant


def test_products_statuses_and_purchases(sandbox_factory):
    sb = sandbox_factory(days=40)
    for merchant in sb.merchants:
        products = sb.truth(merchant, "products")
        assert {p["status"] for p in products} >= {"Live"}
        sold = Counter()
        for order in sb.truth(merchant, "orders"):
            if order["order_status"] == "Fully Paid":
                for item in order["items"]:
                    sold[item["product"]] += item["quantity"]
        for p in products:
            assert p["purchased_quantity"] == sold[p["resource_uri"]]
            assert Decimal(p["min_price"]) <= Decimal(p["base_price"]) <= Decimal(p["max_price"])


@pytest.mark.parametrize("n", [0, 1, 777])
def test_exact_payment_count(n):
    with Sandbox(SandboxConfig(profile="bench", payments=n, days=10)) as sb:
        assert len(sb.truth(None, "payments")) == n


def test_fast_serializers_match_the_dict_ones():
    import orjson

    from instamojo_sandbox.generator import MerchantGenerator, build_merchants

    class Collect:
        def __init__(self):
            self.models = []

        def add(self, model, *changes):
            self.models.append(model)

        def touch(self, model, at):
            pass

    config = SandboxConfig(payments_per_day=40, public_url='http://127.0.0.1:1/"odd"\\path')
    merchant = build_merchants(config, config.public_url)[0]
    sink = Collect()
    first = dt.date(2024, 10, 1)
    gen = MerchantGenerator(config, merchant, sink, first, first + dt.timedelta(days=29), None)
    for i in range(30):
        gen.generate_day(first + dt.timedelta(days=i))
    payments = [m for m in sink.models if m.kind == "payments"]
    statuses = Counter()
    for model in payments:
        for offset_days in (0, 0.01, 4, 12, 40):
            now = model.key + int(offset_days * 86400 * 1_000_000)
            data, tag = model.render(now)
            fast, fast_tag = model.render_json(now)
            assert orjson.loads(fast) == data and list(orjson.loads(fast)) == list(data)
            assert fast_tag == tag
            statuses[(data["status"], bool(data["payout"]), bool(data["cases"]))] += 1
    assert {(None, False, False), (True, False, False), (True, True, False), (False, False, False),
            (True, True, True)} <= set(statuses), statuses
    orders = [m for m in sink.models if m.kind == "orders"]
    order_statuses = Counter()
    for model in orders:
        for offset_days in (0, 0.001, 0.01, 4, 40):
            now = model.key + int(offset_days * 86400 * 1_000_000)
            data, tag = model.render(now)
            fast, fast_tag = model.render_json(now)
            assert fast == orjson.dumps(data) and fast_tag == tag  # the very same bytes
            order_statuses[data["order_status"]] += 1
    assert set(order_statuses) == {"Pending", "Partially Paid", "Fully Paid"}
