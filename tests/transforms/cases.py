"""Hand-computed raw data, one loader per case, each for one merchant.

Fees follow Instamojo's domestic rule, worked out by hand: fee = 2% + ₹3, GST = 18% of the fee,
net = amount − fee − GST:

    ₹1000.00 → fee 23.00, GST 4.14, net 972.86
    ₹ 500.00 → fee 13.00, GST 2.34, net 484.66
    ₹2500.00 → fee 53.00, GST 9.54, net 2437.46
    ₹ 600.00 → fee 15.00, GST 2.70, net 582.30
    ₹ 400.00 → fee 11.00, GST 1.98, net 387.02

Calendar facts used (holidays.India, national): 2024-01-26 (Fri) Republic Day, 2024-08-15 (Thu)
Independence Day; no holiday in 2024-02-26 .. 2024-03-15. The tests import these loaders, and the
DuckDB-vs-Postgres comparison loads all of them at once (one merchant each).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.transforms.rawdata import ist, order, order_payment, payment, payout


def held_then_released(env, m: str = "m1") -> None:
    """P1 (₹1000, Mon 2024-03-04) is held in payout A (Thu 03-07) and released in payout B
    (Fri 03-08), which also settles P2 (₹500, Tue 03-05).

    A: sales 1000.00 − fee 23.00 − tax 4.14 − held 972.86 = paid 0.00
    B: sales 500.00 − fee 13.00 − tax 2.34 + reversed 972.86 = paid 1457.52
    """
    env.insert(
        "payments",
        payment("P1", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="A", merchant=m),
        payment("P2", "500.00", "13.00", "2.34", ist(2024, 3, 5), payout="B", merchant=m),
    )
    env.insert(
        "payouts",
        payout("A", ist(2024, 3, 7, 12), paid="0.00", sales="1000.00", fee="23.00", tax="4.14", held="972.86", merchant=m),
        payout("B", ist(2024, 3, 8, 12), paid="1457.52", sales="500.00", fee="13.00", tax="2.34", reversed="972.86", merchant=m),
    )


def refund_after_payout(env, m: str = "m1") -> None:
    """P1 (₹1000, Mon 03-04) is paid out in A (Thu 03-07: 972.86), then refunded: payout C
    (Thu 03-14) settles P3 (₹2500, Mon 03-11) and deducts the refund of P1's full amount.

    A: 1000.00 − 23.00 − 4.14 = 972.86
    C: 2500.00 − 53.00 − 9.54 − refunded 1000.00 = 1437.46
    """
    env.insert(
        "payments",
        payment("P1", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="A", merchant=m),
        payment("P3", "2500.00", "53.00", "9.54", ist(2024, 3, 11), payout="C", merchant=m),
    )
    env.insert(
        "payouts",
        payout("A", ist(2024, 3, 7, 12), paid="972.86", sales="1000.00", fee="23.00", tax="4.14", merchant=m),
        payout("C", ist(2024, 3, 14, 12), paid="1437.46", sales="2500.00", fee="53.00", tax="9.54", refunded="1000.00", merchant=m),
    )


def friday_late_evening(env, m: str = "m1") -> None:
    """P4 at 23:30 IST on Friday 2024-03-01 (18:00 UTC, same day) and P5 at 00:30 IST on that
    Friday (19:00 UTC on Thursday 02-29): both belong to Friday 03-01 in Asia/Kolkata, so both are
    due on Wednesday 03-06 (Mon 1, Tue 2, Wed 3). Counting P5 from its UTC date would give
    Tuesday 03-05. Neither is paid out."""
    env.insert(
        "payments",
        payment("P4", "1000.00", "23.00", "4.14", ist(2024, 3, 1, 23, 30), merchant=m),
        payment("P5", "1000.00", "23.00", "4.14", ist(2024, 3, 1, 0, 30), merchant=m),
    )


def before_holidays(env, m: str = "m1") -> None:
    """P7 (Tue 2024-01-23): Wed 24 (1), Thu 25 (2), Fri 26 Republic Day, weekend, Mon 29 (3) →
    due 2024-01-29, and payout D comes that day. P8 (Wed 2024-08-14): Thu 15 Independence Day,
    Fri 16 (1), Mon 19 (2), Tue 20 (3) → due 2024-08-20; not paid out."""
    env.insert(
        "payments",
        payment("P7", "1000.00", "23.00", "4.14", ist(2024, 1, 23), payout="D", merchant=m),
        payment("P8", "500.00", "13.00", "2.34", ist(2024, 8, 14), merchant=m),
    )
    env.insert(
        "payouts",
        payout("D", ist(2024, 1, 29, 12), paid="972.86", sales="1000.00", fee="23.00", tax="4.14", merchant=m),
    )


def orders_and_statuses(env, m: str = "m1") -> None:
    """O1 (₹1000, Fully Paid) is paid by P9 (₹600) and P10 (₹400), both in payout E (Thu 03-07):
    E: sales 1000.00 − fee (15.00 + 11.00) − tax (2.70 + 1.98) = 1000.00 − 26.00 − 4.68 = 969.32.
    O2 (₹1000, Partially Paid) has P11 (₹600, Success, payout F on Fri 03-08: 582.30) and P12
    (₹400, Failed: fees 0.00). P13 (₹750) is pending (status null)."""
    env.insert(
        "orders",
        order("O1", "1000.00", "Fully Paid", ist(2024, 3, 4, 9), merchant=m),
        order("O2", "1000.00", "Partially Paid", ist(2024, 3, 5, 9), merchant=m),
    )
    env.insert(
        "order_payments",
        order_payment("O1", "P9", "600.00", "Success", merchant=m),
        order_payment("O1", "P10", "400.00", "Success", merchant=m),
        order_payment("O2", "P11", "600.00", "Success", merchant=m),
        order_payment("O2", "P12", "400.00", "Failed", merchant=m),
    )
    env.insert(
        "payments",
        payment("P9", "600.00", "15.00", "2.70", ist(2024, 3, 4, 9, 5), payout="E", merchant=m),
        payment("P10", "400.00", "11.00", "1.98", ist(2024, 3, 4, 9, 10), payout="E", merchant=m),
        payment("P11", "600.00", "15.00", "2.70", ist(2024, 3, 5, 9, 5), payout="F", merchant=m),
        payment("P12", "400.00", "0.00", "0.00", ist(2024, 3, 5, 9, 10), status=False, merchant=m),
        payment("P13", "750.00", "0.00", "0.00", ist(2024, 3, 4, 11), status=None, merchant=m),
    )
    env.insert(
        "payouts",
        payout("E", ist(2024, 3, 7, 12), paid="969.32", sales="1000.00", fee="26.00", tax="4.68", merchant=m),
        payout("F", ist(2024, 3, 8, 12), paid="582.30", sales="600.00", fee="15.00", tax="2.70", merchant=m),
    )


def overdue_and_late(env, m: str = "m1") -> None:
    """P14 (Mon 2024-03-04, ₹1000) has no payout: due Thu 03-07, overdue after Fri 03-08 (grace 1).
    P15 (same day, ₹1000) is paid out by G on Tue 03-12: 3 business days late (Fri, Mon, Tue),
    past the grace. P16 (same day, ₹500) is paid out early by H on Wed 03-06: −1 business day."""
    env.insert(
        "payments",
        payment("P14", "1000.00", "23.00", "4.14", ist(2024, 3, 4), merchant=m),
        payment("P15", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="G", merchant=m),
        payment("P16", "500.00", "13.00", "2.34", ist(2024, 3, 4), payout="H", merchant=m),
    )
    env.insert(
        "payouts",
        payout("G", ist(2024, 3, 12, 12), paid="972.86", sales="1000.00", fee="23.00", tax="4.14", merchant=m),
        payout("H", ist(2024, 3, 6, 12), paid="484.66", sales="500.00", fee="13.00", tax="2.34", merchant=m),
    )


# -- anomalies: each must yield exactly one exception ----------------------------------------------


def orphan_payment(env, m: str = "m1") -> None:
    """P20 (₹1000) names payout NOPE, which the merchant's payouts (only J) do not hold."""
    env.insert(
        "payments",
        payment("P20", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="NOPE", merchant=m),
        payment("P21", "500.00", "13.00", "2.34", ist(2024, 3, 4), payout="J", merchant=m),
    )
    env.insert("payouts", payout("J", ist(2024, 3, 7, 12), paid="484.66", sales="500.00", fee="13.00", tax="2.34", merchant=m))


def payout_residual(env, m: str = "m1") -> None:
    """Payout K says paid 982.86; its figures give 1000.00 − 23.00 − 4.14 = 972.86: residual 10.00."""
    env.insert("payments", payment("P22", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="K", merchant=m))
    env.insert("payouts", payout("K", ist(2024, 3, 7, 12), paid="982.86", sales="1000.00", fee="23.00", tax="4.14", merchant=m))


def payout_payments_missing(env, m: str = "m1") -> None:
    """Payout L reports sales 1500.00 (fee 36.00, tax 6.48, paid 1457.52: its identity holds) but
    only P23 (₹1000) is linked: 500.00 missing. Payout N reports sales 500.00 and no payment links
    it at all (no_payments_linked): 500.00 missing."""
    env.insert("payments", payment("P23", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="L", merchant=m))
    env.insert(
        "payouts",
        payout("L", ist(2024, 3, 7, 12), paid="1457.52", sales="1500.00", fee="36.00", tax="6.48", merchant=m),
        payout("N", ist(2024, 3, 7, 13), paid="484.66", sales="500.00", fee="13.00", tax="2.34", merchant=m),
    )


def order_fully_paid_short(env, m: str = "m1") -> None:
    """O3 (₹1000) is "Fully Paid" per the API, but only P24 (₹600) succeeded; P25 (₹400) failed:
    balance due 400.00 → order_status_mismatch (high), and no separate under-paid row."""
    env.insert("orders", order("O3", "1000.00", "Fully Paid", ist(2024, 3, 4, 9), merchant=m))
    env.insert(
        "order_payments",
        order_payment("O3", "P24", "600.00", "Success", merchant=m),
        order_payment("O3", "P25", "400.00", "Failed", merchant=m),
    )
    env.insert(
        "payments",
        payment("P24", "600.00", "15.00", "2.70", ist(2024, 3, 4, 9, 5), payout="Q", merchant=m),
        payment("P25", "400.00", "0.00", "0.00", ist(2024, 3, 4, 9, 6), status=False, merchant=m),
    )
    env.insert("payouts", payout("Q", ist(2024, 3, 7, 12), paid="582.30", sales="600.00", fee="15.00", tax="2.70", merchant=m))


def order_overpaid(env, m: str = "m1") -> None:
    """O4 (₹1000, Fully Paid) got two successful ₹1000 payments (P26, P27): overpaid by 1000.00.
    Payout R settles both: 2000.00 − 46.00 − 8.28 = 1945.72."""
    env.insert("orders", order("O4", "1000.00", "Fully Paid", ist(2024, 3, 4, 9), merchant=m))
    env.insert(
        "order_payments",
        order_payment("O4", "P26", "1000.00", "Success", merchant=m),
        order_payment("O4", "P27", "1000.00", "Success", merchant=m),
    )
    env.insert(
        "payments",
        payment("P26", "1000.00", "23.00", "4.14", ist(2024, 3, 4, 9, 5), payout="R", merchant=m),
        payment("P27", "1000.00", "23.00", "4.14", ist(2024, 3, 4, 9, 6), payout="R", merchant=m),
    )
    env.insert("payouts", payout("R", ist(2024, 3, 7, 12), paid="1945.72", sales="2000.00", fee="46.00", tax="8.28", merchant=m))


def amount_not_a_number(env, m: str = "m1") -> None:
    """P28's amount arrived as "N/A": NULL, text in amount__v_text. It is in payout S, whose own
    figures balance (1000.00 − 23.00 − 4.14 = 972.86): the payout's sales cannot be compared with
    an unknown amount, so it is amount_invalid, not payments_missing."""
    add_variant_column(env, "payments", "amount")
    env.insert("payments", payment("P28", None, "23.00", "4.14", ist(2024, 3, 4), payout="S", merchant=m))
    env.sql(f"UPDATE {{raw}}.payments SET amount__v_text = 'N/A' WHERE merchant = '{m}' AND id = 'P28'")
    env.insert("payouts", payout("S", ist(2024, 3, 7, 12), paid="972.86", sales="1000.00", fee="23.00", tax="4.14", merchant=m))


def add_variant_column(env, table: str, column: str) -> None:
    """Add `<column>__v_text` to a raw table, as dlt does on the first non-number it meets."""
    if f"{column}__v_text" not in env.warehouse.columns_of(env.raw, table):
        env.sql(f"ALTER TABLE {{raw}}.{table} ADD COLUMN {column}__v_text TEXT")


# every case loader; the cross-database comparison loads them all, one merchant each
ALL_CASES = (
    held_then_released,
    refund_after_payout,
    friday_late_evening,
    before_holidays,
    orders_and_statuses,
    overdue_and_late,
    orphan_payment,
    payout_residual,
    payout_payments_missing,
    order_fully_paid_short,
    order_overpaid,
    amount_not_a_number,
)


# -- one warehouse for every hand-computed case ---------------------------------------------------
# dbt takes seconds per build, so the cases share one build: each scenario is its own merchant,
# and "now" for its overdue checks is its own latest sync (as_of = "latest_sync"), set below.

# the default "now" of hand-computed cases: far enough after their payments that none awaits
AS_OF = ist(2024, 12, 31, 12, 0)
RAW_WITH_SYNC_TIME = ("payments", "payouts", "orders", "order_payments")


def synced_at(env, m: str, at, where: str = "1 = 1", tables=RAW_WITH_SYNC_TIME) -> None:
    """Stamp merchant `m`'s raw rows (matching `where`) as fetched at `at`."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    for table in tables:
        env.sql(f"UPDATE {{raw}}.{table} SET _synced_at = TIMESTAMPTZ '{stamp}' WHERE merchant = '{m}' AND {where}")


def _order_status_lagging(env, m):
    orders_and_statuses(env, m)
    env.sql(f"UPDATE {{raw}}.orders SET order_status = 'Pending' WHERE merchant = '{m}' AND id = 'O1'")


def _payout_and_order_not_numbers(env, m):
    payout_residual(env, m)
    add_variant_column(env, "payouts", "paid_amount")
    env.sql(f"UPDATE {{raw}}.payouts SET paid_amount = NULL, paid_amount__v_text = 'twelve' WHERE merchant = '{m}' AND id = 'K'")
    env.insert("orders", {"id": "O9", "amount": None, "order_status": "Fully Paid", "created_at": ist(2024, 3, 4), "merchant": m})


def _failed_payment_in_payout(env, m):
    orders_and_statuses(env, m)
    env.sql(f"UPDATE {{raw}}.payments SET payout_id = 'F' WHERE merchant = '{m}' AND id = 'P12'")


def _duplicates(env, m):
    held_then_released(env, m)
    # a copy of P1 the source failed to merge: the one updated last wins
    row = env.warehouse.query_dicts(f"SELECT * FROM {env.raw}.payments WHERE merchant = '{m}' AND id = 'P1'")[0]
    row = {k: v for k, v in row.items() if not k.endswith("__v_text")}
    env.insert("payments", {**row, "payout_id": "B", "updated_at": ist(2024, 3, 3)})
    # P2 listed by two orders
    env.insert("orders", {"id": "O7", "amount": Decimal("500.00"), "order_status": "Fully Paid", "created_at": ist(2024, 3, 5), "merchant": m},
               {"id": "O8", "amount": Decimal("500.00"), "order_status": "Fully Paid", "created_at": ist(2024, 3, 5), "merchant": m})
    env.insert("order_payments", {"order_id": "O7", "payment_id": "P2", "amount": Decimal("500.00"), "status": "Success", "merchant": m},
               {"order_id": "O8", "payment_id": "P2", "amount": Decimal("500.00"), "status": "Success", "merchant": m})


def _payouts_without_payments(env, m):
    held_then_released(env, m)
    env.sql(f"DELETE FROM {{raw}}.payments WHERE merchant = '{m}'")


# merchant → (loader, its "now"); a loader stamps nothing itself
SCENARIOS = {
    "held": (held_then_released, AS_OF),
    "refund": (refund_after_payout, AS_OF),
    "friday_0306": (friday_late_evening, ist(2024, 3, 6, 9, 0)),
    "friday_0308": (friday_late_evening, ist(2024, 3, 8, 9, 0)),
    "holidays": (before_holidays, ist(2024, 8, 20, 18, 0)),
    "orders": (orders_and_statuses, AS_OF),
    "overdue_0308": (overdue_and_late, ist(2024, 3, 8, 20, 0)),  # Fri: the last day of grace
    "overdue_0311": (overdue_and_late, ist(2024, 3, 11, 9, 0)),  # Mon: grace over
    "orphan": (orphan_payment, AS_OF),
    "residual": (payout_residual, AS_OF),
    "missing": (payout_payments_missing, AS_OF),
    "short": (order_fully_paid_short, AS_OF),
    "lagging": (_order_status_lagging, AS_OF),
    "overpaid": (order_overpaid, AS_OF),
    "nan": (amount_not_a_number, AS_OF),
    "payout_order_nan": (_payout_and_order_not_numbers, AS_OF),
    "failed_in_payout": (_failed_payment_in_payout, AS_OF),
    "no_payments": (_payouts_without_payments, AS_OF),
}
# raw copies break the raw-vs-mart totals on purpose: loaded apart from the others (`variants`)
SCENARIOS_APART = {"duplicates": (_duplicates, AS_OF)}


def load_scenarios(env, names=None) -> None:
    """Load the scenarios (all by default) into `env`'s raw tables, one merchant each, plus the
    `_synced_at` ones: "sync_0308" (every row fetched Fri 03-08 19:30 IST), "sync_0311" (the same,
    but P16 fetched again on Mon 03-11 00:30 IST) and "activity_2030" (fetched in 2030, its last
    activity payout G on Tue 03-12)."""
    for m in names or SCENARIOS:
        if m in SCENARIOS or m in SCENARIOS_APART:
            loader, now = {**SCENARIOS, **SCENARIOS_APART}[m]
            loader(env, m)
            synced_at(env, m, now)
        elif m in ("sync_0308", "sync_0311"):
            overdue_and_late(env, m)
            synced_at(env, m, datetime(2024, 3, 8, 14, 0, tzinfo=UTC))
            if m == "sync_0311":
                synced_at(env, m, datetime(2024, 3, 10, 19, 0, tzinfo=UTC), "id = 'P16'", ("payments",))
        elif m == "activity_2030":
            overdue_and_late(env, m)
            synced_at(env, m, datetime(2030, 1, 1, tzinfo=UTC))
        else:
            raise KeyError(m)


ALL_SCENARIOS = (*SCENARIOS, "sync_0308", "sync_0311", "activity_2030")
