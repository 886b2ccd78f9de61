"""The raw suites: clean data passes on DuckDB and Postgres; every broken load made on purpose
fails the expectation it should, makes the report not ok (or only warns, for warn severity),
and the summary names the offending id."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from tests.checks.conftest import NOW


def test_clean_data_passes_every_suite(any_env):
    report = any_env.check(freshness_max_age=dt.timedelta(hours=48))
    assert report.ok, report.summary()
    assert [s.status for s in report.suites] == ["passed"] * len(report.suites), report.summary()
    names = {s.name for s in report.suites}
    assert {"raw.payments", "raw.payouts", "raw.orders", "raw.order_payments", "raw.products"} <= names
    assert {"marts.payments_reconciled", "marts.payout_reconciliation", "marts.order_reconciliation",
            "marts.reconciliation_exceptions", "marts.daily_settlement_summary"} <= names
    results = [r for s in report.suites for r in s.results]
    assert len(results) > 200
    # every result is a real verdict: success, no exception
    assert all(r.success is True and r.raised is None for r in results)
    assert report.summary().startswith(f"checks PASSED on {any_env.warehouse.dialect}")
    # the reference, freshness and residual expectations ran (they need other tables / settings)
    whats = {r.what for s in report.suites for r in s.results}
    assert "every payout_id names a row of payouts (same merchant)" in whats
    assert any(w.startswith("every merchant's newest payment is at most 2 days old") for w in whats)
    assert any(w.startswith("every payout's |residual| ≤ ₹0.00") for w in whats)


@dataclass(frozen=True)
class Broken:
    """A broken load: SQL that breaks clean data, the suite and expectation that must fail
    (`what` starts with `expect`), and the id the summary must name."""

    name: str
    statements: tuple[str, ...]
    suite: str
    expect: str
    offending: str
    gx_type: str


BROKEN = [
    Broken(
        "duplicated id",
        ("INSERT INTO {raw}.payments (merchant, id, currency, amount, fees, total_taxes, created_at, updated_at) "
         "SELECT merchant, id, currency, amount, fees, total_taxes, created_at, updated_at "
         "FROM {raw}.payments WHERE id = 'm1-P2'",),
        "raw.payments", "(merchant, id) is unique", "m1/m1-P2", "expect_compound_columns_to_be_unique",
    ),
    Broken(
        "duplicated single-column key",
        ("INSERT INTO {raw}.user_info (merchant, full_name) VALUES ('m2', 'again')",),
        "raw.user_info", "merchant is unique", "m2", "expect_column_values_to_be_unique",
    ),
    Broken(
        "null id",
        ("ALTER TABLE {raw}.payouts ALTER COLUMN id DROP NOT NULL",
         "UPDATE {raw}.payouts SET id = NULL WHERE id = 'm2-PO1'"),
        "raw.payouts", "id is never null", "m2/None", "expect_column_values_to_not_be_null",
    ),
    Broken(
        "negative amount",
        ("UPDATE {raw}.payments SET amount = -250.50 WHERE id = 'm1-P3'",),
        "raw.payments", "amount ≥ 0", "m1/m1-P3 (amount=-250.50)", "expect_column_values_to_be_between",
    ),
    Broken(
        "one paisa below zero",
        ("UPDATE {raw}.order_items SET discount = -0.01 WHERE order_id = 'm2-O1'",),
        "raw.order_items", "discount ≥ 0", "m2/m2-O1/0", "expect_column_values_to_be_between",
    ),
    Broken(
        "text amount (amount__v_text)",
        ("ALTER TABLE {raw}.payments ADD COLUMN amount__v_text TEXT",
         "UPDATE {raw}.payments SET amount = NULL, amount__v_text = 'N/A' WHERE id = 'm2-P3'"),
        "raw.payments", "amount__v_text is empty", "m2/m2-P3 (amount__v_text='N/A')",
        "expect_column_values_to_be_null",
    ),
    Broken(
        "money null",
        ("UPDATE {raw}.payouts SET held_amount = NULL WHERE id = 'm1-PO1'",),
        "raw.payouts", "held_amount is never null", "m1/m1-PO1", "expect_column_values_to_not_be_null",
    ),
    Broken(
        "payout pointing nowhere",
        ("UPDATE {raw}.payments SET payout_id = 'm1-PO404' WHERE id = 'm1-P1'",),
        "raw.payments", "every payout_id names a row of payouts", "m1/m1-P1 (payout_id='m1-PO404')",
        "expect_column_values_to_be_in_set",
    ),
    Broken(
        "payout of another merchant",
        ("UPDATE {raw}.payments SET payout_id = 'm1-PO1' WHERE id = 'm2-P1'",),
        "raw.payments", "every payout_id names a row of payouts", "m2/m2-P1 (payout_id='m1-PO1')",
        "expect_column_values_to_be_in_set",
    ),
    Broken(
        "order's nested payment missing",
        ("UPDATE {raw}.order_payments SET payment_id = 'm2-P404' WHERE order_id = 'm2-O1'",),
        "raw.order_payments", "every payment_id names a row of payments", "m2/m2-O1/m2-P404",
        "expect_column_values_to_be_in_set",
    ),
    Broken(
        "three decimal places",
        ("ALTER TABLE {raw}.payouts ALTER COLUMN paid_amount TYPE DECIMAL(18,3)",
         "UPDATE {raw}.payouts SET paid_amount = 972.865 WHERE id = 'm2-PO1'"),
        "raw.payouts", "paid_amount has at most two decimal places", "m2/m2-PO1 (paid_amount=972.865)",
        "expect_column_values_to_match_regex",
    ),
    Broken(
        "money stored as a float",
        ("ALTER TABLE {raw}.payouts ALTER COLUMN fee_amount TYPE DOUBLE PRECISION",),
        "raw.payouts", "fee_amount is an exact decimal", "m1/m1-PO1", "expect_column_values_to_be_of_type",
    ),
    Broken(
        "currency not INR",
        ("UPDATE {raw}.orders SET currency = 'USD' WHERE id = 'm1-O1'",),
        "raw.orders", "currency is INR", "m1/m1-O1 (currency='USD')", "expect_column_values_to_be_in_set",
    ),
    Broken(
        "order status out of its set",
        ("UPDATE {raw}.orders SET order_status = 'Shipped' WHERE id = 'm2-O1'",),
        "raw.orders", "order_status is one of", "m2/m2-O1 (order_status='Shipped')",
        "expect_column_values_to_be_in_set",
    ),
    Broken(
        "nested payment status out of its set",
        ("UPDATE {raw}.order_payments SET status = 'success' WHERE order_id = 'm1-O1'",),
        "raw.order_payments", "status is one of", "m1/m1-O1/m1-P1 (status='success')",
        "expect_column_values_to_be_in_set",
    ),
    Broken(
        "product status out of its set",
        ("UPDATE {raw}.products SET status = 'Deleted' WHERE merchant = 'm1'",),
        "raw.products", "status is one of", "m1/book (status='Deleted')", "expect_column_values_to_be_in_set",
    ),
    Broken(
        "updated_at before created_at",
        ("UPDATE {raw}.payments SET updated_at = created_at - INTERVAL '1 day' WHERE id = 'm2-P2'",),
        "raw.payments", "updated_at ≥ created_at", "m2/m2-P2 (updated_at=2024-11-03T05:30:00+00:00",
        "expect_column_pair_values_a_to_be_greater_than_b",
    ),
    Broken(
        "required table empty",
        ("DELETE FROM {raw}.payouts",),
        "raw.payouts", "the table has at least one row", "", "expect_table_row_count_to_be_between",
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[b.name for b in BROKEN])
def test_broken_load_fails_the_expected_expectation(duck, case: Broken):
    duck.sql(*case.statements)
    report = duck.check(suites=(case.suite,))
    assert not report.ok
    suite = report.suite(case.suite)
    assert suite.status == "failed"
    failed = [r for r in suite.results if r.failed]
    hit = [r for r in failed if r.what.startswith(case.expect)]
    assert hit, f"{case.expect!r} did not fail:\n{report.summary()}"
    r = hit[0]
    assert r.expectation == case.gx_type
    assert r.severity == "error" and r.blocking and r.raised is None
    summary = report.summary()
    line = next(line_ for line_ in summary.splitlines() if case.expect in line_)
    assert line.strip().startswith(f"ERROR {duck.raw}.{case.suite.split('.')[1]}:")
    assert case.offending in line, summary


def test_text_amount_also_fails_not_null_and_names_the_id(duck):
    """A money field the API sent as text: NULL in the money column, the text in
    `amount__v_text`; both the drift and the not-null expectation fail, naming the payment."""
    duck.sql(
        "ALTER TABLE {raw}.payments ADD COLUMN amount__v_text TEXT",
        "UPDATE {raw}.payments SET amount = NULL, amount__v_text = 'N/A' WHERE id = 'm2-P3'",
    )
    report = duck.check(suites=("raw.payments",))
    failed = {r.what: r for r in report.suite("raw.payments").results if r.failed}
    assert set(failed) == {"amount__v_text is empty: the API sent no text where amount expects a money",
                           "amount is never null"}, report.summary()
    assert all("m2/m2-P3" in r.offending[0] for r in failed.values())


def test_variant_column_with_no_values_left_passes(duck):
    """dlt keeps a variant column after the bad value is replaced by a good one: an empty
    variant column is not a failure (the rows are fine now)."""
    duck.sql("ALTER TABLE {raw}.payouts ADD COLUMN paid_amount__v_text TEXT")
    report = duck.check(suites=("raw.payouts",))
    assert report.ok, report.summary()
    assert any(r.what.startswith("paid_amount__v_text is empty") for r in report.suite("raw.payouts").results)


def test_warn_severity_is_reported_but_does_not_fail_the_run(duck):
    duck.sql("UPDATE {raw}.payments SET payment_type = 'crypto' WHERE id = 'm1-P2'")
    report = duck.check(suites=("raw.payments",))
    assert report.ok, report.summary()
    suite = report.suite("raw.payments")
    assert suite.status == "warned"
    [warn] = [r for r in suite.results if r.failed]
    assert warn.severity == "warn" and not warn.blocking
    assert "WARN  instamojo_raw.payments: payment_type is one of" in report.summary()
    assert "m1/m1-P2 (payment_type='crypto')" in report.summary()


def test_stale_data_fails_freshness_and_names_the_merchants(duck):
    month_later = NOW + dt.timedelta(days=30)
    report = duck.check(suites=("raw.payments",), freshness_max_age=dt.timedelta(hours=48), now=month_later)
    assert not report.ok
    [stale] = [r for r in report.suite("raw.payments").results if r.failed]
    assert stale.what.startswith("every merchant's newest payment is at most 2 days old")
    assert stale.offending == [
        "m1 (merchant_newest_at=2024-11-07T06:00:00+00:00)",
        "m2 (merchant_newest_at=2024-11-07T06:00:00+00:00)",
    ]


def test_one_stale_merchant_is_named_alone(duck):
    duck.sql("UPDATE {raw}.payments SET created_at = created_at - INTERVAL '20 days', "
             "updated_at = updated_at - INTERVAL '20 days' WHERE merchant = 'm2'")
    report = duck.check(suites=("raw.payments",), freshness_max_age=dt.timedelta(days=3))
    [stale] = [r for r in report.suite("raw.payments").results if r.failed]
    assert [o.split(" ")[0] for o in stale.offending] == ["m2"]


def test_freshness_off_is_said_not_passed(duck):
    duck.sql("UPDATE {raw}.payments SET created_at = created_at - INTERVAL '400 days', "
             "updated_at = updated_at - INTERVAL '400 days'")
    report = duck.check(suites=("raw.payments",), freshness_max_age=None)
    assert report.ok, report.summary()
    assert "not checked: freshness: off" in report.summary()


def test_missing_required_table_fails_and_dependent_reference_is_skipped(duck):
    duck.sql("DROP TABLE {raw}.payouts")
    report = duck.check(suites=("raw",))
    assert not report.ok
    payouts = report.suite("raw.payouts")
    assert payouts.status == "failed"
    assert "ERROR instamojo_raw.payouts: the table does not exist, and it is required" in report.summary()
    payments = report.suite("raw.payments")
    assert payments.status == "passed"
    assert any("payout_id → payouts.id" in s for s in payments.skipped_expectations)


def test_missing_optional_tables_are_skipped(duck):
    duck.sql(*(f"DROP TABLE {{raw}}.{t}" for t in ("order_item_variants", "order_items", "order_payments", "orders")))
    report = duck.check(suites=("raw",))
    assert report.ok, report.summary()
    assert report.suite("raw.orders").status == "skipped"
    assert "skipped: instamojo_raw.orders does not exist (endpoint not granted or never synced)" in report.summary()


def test_empty_optional_table_only_warns(duck):
    duck.sql("DELETE FROM {raw}.product_covers")
    report = duck.check(suites=("raw.product_covers",))
    assert report.ok
    assert report.suite("raw.product_covers").status == "warned"


def test_merchant_without_rows_in_the_target_is_not_judged(duck):
    """m2 did not grant payouts:read (no payouts rows): its payments' payout references are
    not judged, while m1's still are."""
    duck.sql("DELETE FROM {raw}.payouts WHERE merchant = 'm2'",
             "UPDATE {raw}.payments SET payout_id = 'm1-PO404' WHERE id = 'm1-P1'")
    report = duck.check(suites=("raw.payments",))
    [failed] = [r for r in report.suite("raw.payments").results if r.failed]
    assert failed.offending == ["m1/m1-P1 (payout_id='m1-PO404')"]


def test_offending_ids_are_capped_and_distinct(duck):
    duck.sql("UPDATE {raw}.payments SET currency = 'USD'")
    report = duck.check(suites=("raw.payments",), offending_ids_shown=2)
    [r] = [r for r in report.suite("raw.payments").results if r.failed]
    assert r.unexpected_count == 6 and r.element_count == 6
    assert len(r.offending) == 2 and len(set(r.offending)) == 2


@pytest.mark.postgres
@pytest.mark.parametrize("case", [b for b in BROKEN if b.name in {
    "duplicated id", "text amount (amount__v_text)", "payout pointing nowhere", "three decimal places",
    "updated_at before created_at",
}], ids=lambda b: b.name)
def test_broken_loads_fail_on_postgres_too(pg, case: Broken):
    pg.sql(*case.statements)
    report = pg.check(suites=(case.suite,))
    assert not report.ok
    line = next(line_ for line_ in report.summary().splitlines() if case.expect in line_)
    assert line.strip().startswith("ERROR") and case.offending in line, report.summary()


def test_unknown_column_only_warns_and_is_named(duck):
    """The API added a field (the sandbox's unknown_field anomaly): the source keeps it as a new
    column; the checks warn, naming it, and do not fail the run."""
    duck.sql("ALTER TABLE {raw}.payments ADD COLUMN settlement_reference TEXT",
             "UPDATE {raw}.payments SET settlement_reference = 'SR-1' WHERE id = 'm1-P1'",
             "ALTER TABLE {raw}.payments ADD COLUMN _dlt_load_id TEXT")
    report = duck.check(suites=("raw.payments",))
    assert report.ok, report.summary()
    [warn] = [r for r in report.suite("raw.payments").results if r.failed]
    assert warn.expectation == "expect_table_columns_to_match_set" and warn.severity == "warn"
    assert warn.offending == ["unexpected column settlement_reference"]
    assert "WARN  instamojo_raw.payments: no column beyond the raw-table contract" in report.summary()


PROVEN_ELSEWHERE = {"expect_table_columns_to_match_set"}  # test_unknown_column_only_warns_and_is_named


def test_every_kind_of_raw_expectation_has_a_case_that_fails_it(duck):
    """No check that cannot fail: every expectation type the raw suites use (on a warehouse
    with a variant column and freshness on) is made to fail by a broken load above."""
    from checks.runner import _snake, plan_checks
    from checks.settings import CheckSettings

    duck.sql("ALTER TABLE {raw}.payments ADD COLUMN amount__v_text TEXT")
    plans = plan_checks(duck.warehouse, settings=CheckSettings(suites=("raw",), freshness_max_age=dt.timedelta(days=2)))
    used = {_snake(e.type) for _, plan in plans for e in plan.expectations}
    proven = {b.gx_type for b in BROKEN} | PROVEN_ELSEWHERE
    assert len(used) >= 9 and used - proven == set()
