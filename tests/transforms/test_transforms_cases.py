"""Hand-computed cases: small raw fixtures (tests/transforms/cases.py) whose marts are worked out
by hand below. Each runs on DuckDB and on Postgres. The scenarios share one dbt build per
database (`cases`: one merchant each, whose "now" is its own latest sync); the few that need other
settings (tolerances, no grace, "latest_activity") share a second and third build (`variants`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D


def test_payment_held_then_released_in_a_later_payout(cases):
    env = cases.of("held")

    p1 = env.row("payments_reconciled", payment_id="P1")
    assert (p1["payout_id"], p1["payout_found"], p1["settlement_state"]) == ("A", True, "settled")
    assert (p1["amount"], p1["fees"], p1["taxes"], p1["net_amount"]) == (D("1000.00"), D("23.00"), D("4.14"), D("972.86"))
    # Mon 03-04 → Tue (1), Wed (2), Thu 03-07 (3); A came that day
    assert (p1["expected_payout_date"], p1["paid_out_date"], p1["business_days_late"]) == (date(2024, 3, 7), date(2024, 3, 7), 0)

    a = env.row("payout_reconciliation", payout_id="A")
    assert a["expected_paid_amount"] == D("0.00")  # 1000.00 − 23.00 − 4.14 − 972.86
    assert (a["residual"], a["sales_difference"], a["status"]) == (D("0.00"), D("0.00"), "balanced")
    assert (a["linked_payments_count"], a["linked_amount"], a["linked_net_amount"]) == (1, D("1000.00"), D("972.86"))
    b = env.row("payout_reconciliation", payout_id="B")
    assert b["expected_paid_amount"] == D("1457.52")  # 500.00 − 13.00 − 2.34 + 972.86
    assert (b["residual"], b["status"]) == (D("0.00"), "balanced")

    daily = {r["summary_date"]: r for r in env.rows("daily_settlement_summary", "summary_date <= DATE '2024-03-08'")}
    # awaiting = net not yet in a paid-out payout; held = held in payouts, not yet released
    assert [(d.day, r["paid_out_amount"], r["awaiting_payout_amount"], r["held_amount"]) for d, r in daily.items()] == [
        (4, D("0.00"), D("972.86"), D("0.00")),
        (5, D("0.00"), D("1457.52"), D("0.00")),  # + P2's net 484.66
        (6, D("0.00"), D("1457.52"), D("0.00")),
        (7, D("0.00"), D("484.66"), D("972.86")),  # A paid 0.00 and holds P1's net
        (8, D("1457.52"), D("0.00"), D("0.00")),  # B releases it
    ]
    assert env.exceptions() == []


def test_refund_after_payout(cases):
    env = cases.of("refund")

    p1 = env.row("payments_reconciled", payment_id="P1")
    assert (p1["payout_id"], p1["status"], p1["settlement_state"]) == ("A", "successful", "settled")
    c = env.row("payout_reconciliation", payout_id="C")
    assert (c["refunded_amount"], c["expected_paid_amount"], c["residual"]) == (D("1000.00"), D("1437.46"), D("0.00"))
    # the refunded payment stays linked to A: C's linked sales are P3's alone
    assert (c["linked_payments_count"], c["linked_amount"], c["status"]) == (1, D("2500.00"), "balanced")
    assert env.row("payout_reconciliation", payout_id="A")["status"] == "balanced"
    day = env.row("daily_settlement_summary", summary_date=date(2024, 3, 14))
    assert (day["paid_out_amount"], day["awaiting_payout_amount"]) == (D("1437.46"), D("0.00"))
    assert env.exceptions() == []


def test_payment_at_2330_ist_on_a_friday(cases):
    env = cases.of("friday_0306")  # "now": Wed 03-06 09:00 IST

    p4 = env.row("payments_reconciled", payment_id="P4")
    assert p4["created_at"] == datetime(2024, 3, 1, 18, 0, tzinfo=UTC)
    p5 = env.row("payments_reconciled", payment_id="P5")
    assert p5["created_at"] == datetime(2024, 2, 29, 19, 0, tzinfo=UTC)  # Thursday in UTC
    for p in (p4, p5):
        assert p["payment_date"] == date(2024, 3, 1)
        assert p["expected_payout_date"] == date(2024, 3, 6)  # Mon (1), Tue (2), Wed (3)
        assert (p["settlement_state"], p["business_days_late"]) == ("awaiting_payout", 0)
    assert env.exceptions() == []

    # two days on, past Thu 03-07 (expected + 1 business day of grace): both are overdue
    env = cases.of("friday_0308")
    for pid in ("P4", "P5"):
        p = env.row("payments_reconciled", payment_id=pid)
        assert (p["settlement_state"], p["business_days_late"]) == ("overdue", 2)  # Thu, Fri
    assert env.exception_summary() == [
        ("overdue_settlement", "P4", D("1000.00")),
        ("overdue_settlement", "P5", D("1000.00")),
    ]


def test_payment_before_an_indian_holiday(cases):
    env = cases.of("holidays")  # "now": Tue 08-20 18:00 IST

    p7 = env.row("payments_reconciled", payment_id="P7")
    assert (p7["expected_payout_date"], p7["paid_out_date"], p7["business_days_late"]) == (
        date(2024, 1, 29), date(2024, 1, 29), 0
    )
    p8 = env.row("payments_reconciled", payment_id="P8")
    assert p8["expected_payout_date"] == date(2024, 8, 20)
    assert p8["overdue_after_date"] == date(2024, 8, 21)
    assert (p8["settlement_state"], p8["business_days_late"]) == ("awaiting_payout", 0)

    republic = env.row("settlement_calendar", calendar_date=date(2024, 1, 26))
    assert (republic["is_business_day"], republic["holiday_name"]) == (False, "Republic Day")
    independence = env.row("settlement_calendar", calendar_date=date(2024, 8, 15))
    assert (independence["is_business_day"], independence["holiday_name"]) == (False, "Independence Day")
    assert env.row("daily_settlement_summary", summary_date=date(2024, 1, 26))["is_business_day"] is False
    assert env.exceptions() == []


def test_order_paid_in_two_payments_failed_and_pending_payments(cases):
    env = cases.of("orders")

    o1 = env.row("order_reconciliation", order_id="O1")
    assert (o1["payments_count"], o1["successful_payments_count"], o1["successful_amount"]) == (2, 2, D("1000.00"))
    assert (o1["balance_due"], o1["payments_status"], o1["status"]) == (D("0.00"), "paid", "paid")
    assert {p["payment_id"]: p["order_id"] for p in env.rows("payments_reconciled")} == {
        "P9": "O1", "P10": "O1", "P11": "O2", "P12": "O2", "P13": None
    }
    # an order still partly paid, and the API says so: an open order, not an exception
    o2 = env.row("order_reconciliation", order_id="O2")
    assert (o2["successful_payments_count"], o2["successful_amount"], o2["balance_due"]) == (1, D("600.00"), D("400.00"))
    assert (o2["payments_status"], o2["status"]) == ("partially_paid", "partially_paid")

    failed = env.row("payments_reconciled", payment_id="P12")
    assert (failed["status"], failed["settlement_state"]) == ("failed", "failed")
    assert (failed["expected_payout_date"], failed["business_days_late"], failed["net_amount"]) == (None, None, D("400.00"))
    pending = env.row("payments_reconciled", payment_id="P13")
    assert (pending["status"], pending["settlement_state"], pending["expected_payout_date"]) == ("pending", "pending", None)

    assert env.row("payout_reconciliation", payout_id="E")["expected_paid_amount"] == D("969.32")
    # 03-04: P9 + P10 only (P13 is pending); 03-05: P11 only (P12 failed)
    day4 = env.row("daily_settlement_summary", summary_date=date(2024, 3, 4))
    assert (day4["successful_payments_count"], day4["gross_amount"], day4["fees"], day4["taxes"], day4["net_amount"]) == (
        2, D("1000.00"), D("26.00"), D("4.68"), D("969.32")
    )
    day5 = env.row("daily_settlement_summary", summary_date=date(2024, 3, 5))
    assert (day5["successful_payments_count"], day5["gross_amount"]) == (1, D("600.00"))
    assert env.exceptions() == []


def test_overdue_late_and_early_settlement(cases, variants):
    env = cases.of("overdue_0308")  # Fri: the last day of grace
    p14 = env.row("payments_reconciled", payment_id="P14")
    assert (p14["expected_payout_date"], p14["overdue_after_date"]) == (date(2024, 3, 7), date(2024, 3, 8))
    assert (p14["settlement_state"], p14["business_days_late"]) == ("awaiting_payout", 1)
    p15 = env.row("payments_reconciled", payment_id="P15")
    assert (p15["settlement_state"], p15["business_days_late"]) == ("settled", 3)  # Fri, Mon, Tue
    assert env.row("payments_reconciled", payment_id="P16")["business_days_late"] == -1  # a day early
    assert env.exception_summary() == [("late_settlement", "P15", D("1000.00"))]

    env = cases.of("overdue_0311")  # Mon: grace over
    p14 = env.row("payments_reconciled", payment_id="P14")
    assert (p14["settlement_state"], p14["business_days_late"]) == ("overdue", 2)
    overdue = [e for e in env.exceptions() if e["exception_type"] == "overdue_settlement"]
    assert [(e["entity_id"], e["severity"], e["amount_at_stake"]) for e in overdue] == [("P14", "high", D("1000.00"))]
    assert "due in a payout on 2024-03-07" in overdue[0]["explanation"]

    env = variants["tolerance_10_no_grace"].of("overdue_0308")  # Fri 03-08, no grace
    assert env.row("payments_reconciled", payment_id="P14")["settlement_state"] == "overdue"
    assert env.row("payments_reconciled", payment_id="P14")["overdue_after_date"] == date(2024, 3, 7)


# -- anomalies: each yields exactly its exception, once, with the right id and amount -------------


def test_orphan_payment(cases):
    env = cases.of("orphan")
    assert env.exception_summary() == [("orphan_payment", "P20", D("1000.00"))]
    (e,) = env.exceptions()
    assert (e["severity"], e["entity_type"], e["related_id"]) == ("high", "payment", "NOPE")
    p = env.row("payments_reconciled", payment_id="P20")
    assert (p["payout_found"], p["settlement_state"], p["paid_out_at"]) == (False, "settled", None)


def test_payout_residual_and_tolerance(cases, variants):
    env = cases.of("residual")
    assert env.exception_summary() == [("payout_residual", "K", D("10.00"))]
    k = env.row("payout_reconciliation", payout_id="K")
    assert (k["expected_paid_amount"], k["residual"], k["status"]) == (D("972.86"), D("10.00"), "residual")

    env = variants["tolerance_10_no_grace"].of("residual")  # payout_tolerance 10.00
    assert env.row("payout_reconciliation", payout_id="K")["status"] == "balanced"
    assert env.exceptions() == []
    env = variants["tolerance_9_99_latest_activity"].of("residual")  # payout_tolerance 9.99
    assert env.exception_summary() == [("payout_residual", "K", D("10.00"))]


def test_payout_payments_missing(cases):
    env = cases.of("missing")
    assert env.exception_summary() == [
        ("payout_payments_missing", "L", D("500.00")),
        ("payout_payments_missing", "N", D("500.00")),
    ]
    assert env.row("payout_reconciliation", payout_id="L")["status"] == "payments_missing"
    n = env.row("payout_reconciliation", payout_id="N")
    assert (n["status"], n["linked_payments_count"], n["linked_amount"], n["residual"]) == (
        "no_payments_linked", 0, D("0.00"), D("0.00")
    )


def test_order_fully_paid_but_short_is_one_status_mismatch(cases):
    env = cases.of("short")
    assert env.exception_summary() == [("order_status_mismatch", "O3", D("400.00"))]
    (e,) = env.exceptions()
    assert e["severity"] == "high"
    assert e["explanation"] == (
        'order O3 is "Fully Paid" per the API but its successful payments (1) sum to 600.00 of 1000.00 '
        "(balance due 400.00)"
    )
    o3 = env.row("order_reconciliation", order_id="O3")
    assert (o3["payments_status"], o3["status"], o3["balance_due"]) == ("partially_paid", "status_mismatch", D("400.00"))


def test_order_status_lagging_behind_payments_is_a_medium_mismatch(cases):
    env = cases.of("lagging")  # orders_and_statuses, O1 "Pending" per the API
    (e,) = env.exceptions()
    assert (e["exception_type"], e["entity_id"], e["severity"], e["amount_at_stake"]) == (
        "order_status_mismatch", "O1", "medium", D("0.00")
    )


def test_order_overpaid(cases):
    env = cases.of("overpaid")
    assert env.exception_summary() == [("order_overpaid", "O4", D("1000.00"))]
    o4 = env.row("order_reconciliation", order_id="O4")
    assert (o4["balance_due"], o4["status"]) == (D("-1000.00"), "overpaid")


def test_amount_not_a_number_is_one_invalid_amount(cases):
    env = cases.of("nan")
    assert env.exception_summary() == [("invalid_amount", "P28", None)]
    (e,) = env.exceptions()
    assert e["explanation"] == 'payments.amount of payment P28 is not a number: "N/A"'
    p = env.row("payments_reconciled", payment_id="P28")
    assert (p["amount"], p["net_amount"], p["settlement_state"]) == (None, None, "settled")
    s = env.row("payout_reconciliation", payout_id="S")
    assert (s["linked_amount"], s["sales_difference"], s["residual"], s["status"]) == (None, None, D("0.00"), "amount_invalid")


def test_payout_and_order_amounts_not_numbers(cases):
    env = cases.of("payout_order_nan")  # payout K's paid_amount "twelve", order O9 without amount
    # the payout's residual is unknown, so no payout_residual; the order cannot be judged
    assert env.exception_summary() == [("invalid_amount", "K", None), ("invalid_amount", "O9", None)]
    by_id = {e["entity_id"]: e["explanation"] for e in env.exceptions()}
    assert by_id == {
        "K": 'payouts.paid_amount of payout K is not a number: "twelve"',
        "O9": "orders.amount of order O9 is missing (NULL)",
    }
    assert env.row("payout_reconciliation", payout_id="K")["status"] == "amount_invalid"
    assert env.row("order_reconciliation", order_id="O9")["status"] == "amount_invalid"


def test_failed_payment_inside_a_payout(cases):
    env = cases.of("failed_in_payout")  # orders_and_statuses, failed P12 linked to payout F
    assert env.exception_summary() == [("failed_payment_in_payout", "P12", D("400.00"))]
    f = env.row("payout_reconciliation", payout_id="F")
    # F's sums cover successful payments only: the failed one does not also skew them
    assert (f["linked_payments_count"], f["linked_unsuccessful_count"], f["linked_amount"], f["status"]) == (
        2, 1, D("600.00"), "balanced"
    )


def test_duplicate_payments(variants):
    env = variants["tolerance_10_no_grace"].of("duplicates")  # a raw copy of P1 (updated earlier, payout B); P2 in orders O7 and O8
    assert env.exception_summary() == [
        ("duplicate_payment", "O8", D("500.00")),
        ("duplicate_payment", "P1", D("1000.00")),
    ]
    assert len(env.rows("payments_reconciled", "payment_id = 'P1'")) == 1
    assert env.row("payments_reconciled", payment_id="P1")["payout_id"] == "A"  # updated 03-04, after 03-03
    assert env.row("payments_reconciled", payment_id="P2")["order_id"] == "O7"


def test_merchants_are_reconciled_apart(cases):
    """Merchants with the same payment and payout ids: nothing links across them."""
    assert cases.of("held").exceptions() == [] and cases.of("refund").exceptions() == []
    a = {r["merchant"]: r for r in cases.rows("payout_reconciliation", "payout_id = 'A'")}
    assert (a["held"]["paid_amount"], a["held"]["status"]) == (D("0.00"), "balanced")
    assert (a["refund"]["paid_amount"], a["refund"]["status"]) == (D("972.86"), "balanced")
    assert a["held"]["linked_payments_count"] == a["refund"]["linked_payments_count"] == 1
    # every scenario that staged payout A has its own, each linked to its own payment P1
    assert {m for m, r in a.items() if r["linked_payments_count"] == 1} >= {"held", "refund"}
