"""The marts suites: a residual beyond tolerance, an order whose status contradicts its payments,
stale or tampered marts each fail the expectation that guards them, naming the offending id;
business exceptions (overdue payments, high-severity exceptions) only warn."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Broken:
    """A broken load: `raw` statements (then the marts are rebuilt) or `marts` statements
    (tampering with built marts, for what the transforms never produce themselves)."""

    name: str
    suite: str
    expect: str
    offending: str
    gx_type: str
    raw: tuple[str, ...] = ()
    marts: tuple[str, ...] = ()
    severity: str = "error"


BROKEN = [
    Broken(
        "residual beyond tolerance", "marts.payout_reconciliation",
        "every payout's |residual| ≤ ₹0.00", "m2/m2-PO1 (residual=0.01, paid_amount=972.87, expected_paid_amount=972.86)",
        "expect_column_values_to_be_between",
        raw=("UPDATE {raw}.payouts SET paid_amount = paid_amount + 0.01 WHERE id = 'm2-PO1'",),
    ),
    Broken(
        "order status contradicts its payments", "marts.order_reconciliation",
        "no order's API status contradicts its successful payments",
        "m1/m1-O1 (status='status_mismatch', api_order_status='Fully Paid', balance_due=400.00)",
        "expect_column_values_to_not_be_in_set",
        raw=("UPDATE {raw}.order_payments SET amount = 600.00 WHERE order_id = 'm1-O1'",),
    ),
    Broken(
        "marts stale: a payment synced after the build", "marts.payments_reconciled",
        "one row per raw payment: 7 rows", "", "expect_table_row_count_to_equal",
        marts=("INSERT INTO {raw}.payments (merchant, id, currency, amount, fees, total_taxes) "
               "VALUES ('m1', 'm1-P9', 'INR', 10.00, 0.00, 0.00)",),
    ),
    Broken(
        "payments_reconciled status out of its set", "marts.payments_reconciled",
        "status is one of successful, failed, pending", "m2/m2-P2 (status='refunded')",
        "expect_column_values_to_be_in_set",
        marts=("UPDATE {marts}.payments_reconciled SET status = 'refunded' WHERE payment_id = 'm2-P2'",),
    ),
    Broken(
        "duplicated mart key", "marts.order_reconciliation",
        "(merchant, order_id) is unique", "m2/m2-O1", "expect_compound_columns_to_be_unique",
        marts=("INSERT INTO {marts}.order_reconciliation SELECT * FROM {marts}.order_reconciliation "
               "WHERE order_id = 'm2-O1'",),
    ),
    Broken(
        "unknown exception type", "marts.reconciliation_exceptions",
        "exception_type is one of", "m1/weird:m1-P1 (exception_type='weird')", "expect_column_values_to_be_in_set",
        marts=("INSERT INTO {marts}.reconciliation_exceptions (merchant, exception_id, exception_type, severity, "
               "entity_type, entity_id, amount_at_stake) VALUES ('m1', 'weird:m1-P1', 'weird', 'low', "
               "'payment', 'm1-P1', 1.00)",),
    ),
    Broken(
        "negative amount at stake", "marts.reconciliation_exceptions",
        "amount_at_stake ≥ 0", "m1/late_settlement:m1-P1 (amount_at_stake=-1.00)", "expect_column_values_to_be_between",
        marts=("INSERT INTO {marts}.reconciliation_exceptions (merchant, exception_id, exception_type, severity, "
               "entity_type, entity_id, amount_at_stake) VALUES ('m1', 'late_settlement:m1-P1', "
               "'late_settlement', 'low', 'payment', 'm1-P1', -1.00)",),
    ),
    Broken(
        "negative money awaiting payout", "marts.daily_settlement_summary",
        "awaiting_payout_amount ≥ 0", "m1/2024-11-05 (awaiting_payout_amount=-972.86)",
        "expect_column_values_to_be_between",
        marts=("UPDATE {marts}.daily_settlement_summary SET awaiting_payout_amount = -972.86 "
               "WHERE merchant = 'm1' AND summary_date = DATE '2024-11-05'",),
    ),
    Broken(
        "payout expected on the payment's own day", "marts.settlement_calendar",
        "expected_payout_date > calendar_date", "2024-11-04", "expect_column_pair_values_a_to_be_greater_than_b",
        marts=("UPDATE {marts}.settlement_calendar SET expected_payout_date = calendar_date "
               "WHERE calendar_date = DATE '2024-11-04'",),
    ),
    Broken(
        "mart money with a third decimal place", "marts.payout_reconciliation",
        "linked_amount has at most two decimal places", "m1/m1-PO1 (linked_amount=1000.005)",
        "expect_column_values_to_match_regex",
        marts=("ALTER TABLE {marts}.payout_reconciliation ALTER COLUMN linked_amount TYPE DECIMAL(18,3)",
               "UPDATE {marts}.payout_reconciliation SET linked_amount = 1000.005 WHERE payout_id = 'm1-PO1'"),
    ),
    Broken(
        "mart money as a float", "marts.payments_reconciled",
        "net_amount is an exact decimal", "m1/m1-P1", "expect_column_values_to_be_of_type",
        marts=("ALTER TABLE {marts}.payments_reconciled ALTER COLUMN net_amount TYPE DOUBLE PRECISION",),
    ),
    Broken(
        "null mart key", "marts.payout_reconciliation", "payout_id is never null", "m1/None",
        "expect_column_values_to_not_be_null",
        marts=("UPDATE {marts}.payout_reconciliation SET payout_id = NULL WHERE payout_id = 'm1-PO1'",),
    ),
    Broken(
        "duplicated single-column mart key", "marts.settlement_calendar",
        "calendar_date is unique", "2024-11-04", "expect_column_values_to_be_unique",
        marts=("INSERT INTO {marts}.settlement_calendar SELECT * FROM {marts}.settlement_calendar "
               "WHERE calendar_date = DATE '2024-11-04'",),
    ),
    Broken(
        "currency not INR in a mart", "marts.order_reconciliation", "currency is INR",
        "m2/m2-O1 (currency='EUR')", "expect_column_values_to_be_in_set",
        raw=("UPDATE {raw}.orders SET currency = 'EUR' WHERE id = 'm2-O1'",),
    ),
]


def _apply(env, case: Broken) -> None:
    if case.raw:
        env.sql(*case.raw)
        env.build()
    env.sql(*case.marts)


@pytest.mark.parametrize("case", BROKEN, ids=[b.name for b in BROKEN])
def test_broken_mart_fails_the_expected_expectation(duck, case: Broken):
    _apply(duck, case)
    report = duck.check(suites=(case.suite,))
    assert not report.ok
    suite = report.suite(case.suite)
    hit = [r for r in suite.results if r.failed and r.what.startswith(case.expect)]
    assert hit, f"{case.expect!r} did not fail:\n{report.summary()}"
    assert hit[0].expectation == case.gx_type and hit[0].blocking and hit[0].raised is None
    line = next(line_ for line_ in report.summary().splitlines() if case.expect in line_)
    assert line.strip().startswith(f"ERROR {duck.marts}.{case.suite.split('.')[1]}:")
    assert case.offending in line, report.summary()


def test_a_residual_fails_the_run_on_the_raw_side_too(duck):
    """The residual is judged in the marts only: raw payouts with a residual are still valid raw data."""
    _apply(duck, BROKEN[0])
    report = duck.check(suites=("raw.payouts", "marts.payout_reconciliation", "marts.reconciliation_exceptions"))
    assert not report.ok
    assert [s.name for s in report.suites if s.status == "failed"] == ["marts.payout_reconciliation"]
    # the high-severity exception the transforms raise for it is reported as a warning
    exceptions = report.suite("marts.reconciliation_exceptions")
    assert exceptions.status == "warned"
    assert "m2/payout_residual:m2-PO1" in exceptions.failures[0].offending


def _payouts_with_residuals(env, residuals: list[str]) -> None:
    """Replace the raw payouts with copies of m1's payout, each paid off by one residual."""
    env.sql("DELETE FROM {raw}.payouts WHERE merchant = 'm1' AND id <> 'm1-PO1'")
    for i, residual in enumerate(residuals):
        env.sql(
            "INSERT INTO {raw}.payouts (merchant, id, currency, paid_amount, sales_amount, fee_amount, "
            "total_tax_amount, held_amount, reversed_amount, refunded_amount, affiliate_commission_amount, "
            "partner_commission_amount, shipping_fee, paid_out_at) "
            f"SELECT merchant, 'r{i}', currency, paid_amount + {residual}, 0.00 + paid_amount, 0.00, 0.00, "
            "0.00, 0.00, 0.00, 0.00, 0.00, 0.00, paid_out_at FROM {raw}.payouts WHERE id = 'm1-PO1'"
        )
    env.build()


@pytest.mark.parametrize("tolerance, residuals, offending", [
    ("0.05", ["0.05", "-0.05", "0.06", "-0.06", "0.00"], ["r2", "r3"]),
    # 0.3 has no exact binary float; the check compares exact paise
    ("0.30", ["0.30", "-0.30", "0.31", "-0.31"], ["r2", "r3"]),
    ("0.00", ["0.01", "-0.01", "0.00"], ["r0", "r1"]),
])
def test_residual_tolerance_is_exact(duck, tolerance, residuals, offending):
    from decimal import Decimal

    _payouts_with_residuals(duck, residuals)
    report = duck.check(suites=("marts.payout_reconciliation",), payout_residual_tolerance=Decimal(tolerance),
                        offending_ids_shown=10)
    # (the copies have no linked payments: a warning of their own, not what this test is about)
    [failed] = [r for r in report.suite("marts.payout_reconciliation").failures if r.blocking]
    assert failed.what.startswith(f"every payout's |residual| ≤ ₹{tolerance}")
    assert [o.split(" ")[0] for o in failed.offending] == [f"m1/{p}" for p in offending]
    assert failed.unexpected_count == len(offending)


def test_overdue_payment_only_warns(duck):
    """A successful payment (Tue 1 Oct 2024; Gandhi Jayanti on the 2nd, so due Mon 7 Oct) with no
    payout long after its T+3 date: the data is right, the
    money is late. Reported (warn) with its id, the run passes."""
    duck.sql("UPDATE {raw}.payments SET status = TRUE, created_at = TIMESTAMPTZ '2024-10-01 05:30:00+00', "
             "updated_at = TIMESTAMPTZ '2024-10-01 05:30:00+00' WHERE id = 'm2-P3'")
    duck.build()
    report = duck.check(suites=("marts",))
    assert report.ok, report.summary()
    payments = report.suite("marts.payments_reconciled")
    [overdue] = payments.failures
    assert overdue.severity == "warn"
    assert overdue.offending == ["m2/m2-P3 (expected_payout_date=2024-10-07, as_of_date=2024-11-08)"]
    assert report.suite("marts.reconciliation_exceptions").status == "warned"


def test_payout_with_payments_missing_only_warns(duck):
    duck.sql("DELETE FROM {raw}.payments WHERE id = 'm1-P1'", "DELETE FROM {raw}.order_payments WHERE merchant = 'm1'")
    duck.build()
    report = duck.check(suites=("marts.payout_reconciliation",))
    assert report.ok, report.summary()
    [w] = report.suite("marts.payout_reconciliation").failures
    assert w.what == "every payout's sales equal the successful payments linked to it"
    assert w.offending == ["m1/m1-PO1 (status='no_payments_linked', sales_difference=1000.00)"]


def test_negative_held_amount_only_warns(duck):
    duck.sql("UPDATE {marts}.daily_settlement_summary SET held_amount = -5.00 WHERE merchant = 'm2'")
    report = duck.check(suites=("marts.daily_settlement_summary",))
    assert report.ok
    [w] = report.suite("marts.daily_settlement_summary").failures
    assert w.what == "held_amount ≥ 0" and w.severity == "warn"


def test_missing_mart_fails_and_says_to_run_the_transforms(duck):
    duck.sql("DROP TABLE {marts}.payout_reconciliation")
    report = duck.check(suites=("marts",))
    assert not report.ok
    assert "ERROR instamojo.payout_reconciliation: the table does not exist: run the transforms" in report.summary()


def test_marts_without_optional_raw_tables(duck):
    """A merchant who granted no orders:read: no raw orders; the order mart is empty and must be."""
    duck.sql(*(f"DROP TABLE {{raw}}.{t}" for t in ("order_item_variants", "order_items", "order_payments", "orders")))
    duck.build()
    report = duck.check(suites=("marts",))
    assert report.ok, report.summary()
    assert report.suite("marts.order_reconciliation").rows == 0


@pytest.mark.postgres
def test_residual_and_order_mismatch_fail_on_postgres(pg):
    _apply(pg, BROKEN[0])
    _apply(pg, BROKEN[1])
    report = pg.check(suites=("marts",))
    assert not report.ok
    summary = report.summary()
    for case in BROKEN[:2]:
        line = next(line_ for line_ in summary.splitlines() if case.expect in line_)
        assert line.strip().startswith("ERROR") and case.offending in line, summary


def test_every_kind_of_mart_expectation_has_a_case_that_fails_it(duck):
    """No check that cannot fail: every (type, severity) of error expectation the marts suites
    use is made to fail above; the warn ones by the *_only_warns tests."""
    from checks.runner import _snake, plan_checks
    from checks.settings import CheckSettings

    plans = plan_checks(duck.warehouse, settings=CheckSettings(suites=("marts",)))
    used = {(_snake(e.type), e.severity) for _, plan in plans for e in plan.expectations}
    proven = {(b.gx_type, b.severity) for b in BROKEN}
    assert len(used) >= 8 and {u for u in used if u[1] == "error"} - proven == set()
