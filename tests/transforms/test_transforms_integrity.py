"""Every hand-computed case at once (one merchant each): DuckDB and Postgres must produce the same
rows, and the integrity tests (dbt data tests: transforms/tests/*.sql and the one-row-per-key test
of each mart) must return zero rows — and each must fail on bad data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.transforms import cases
from tests.transforms.conftest import drop_env, duckdb_env
from transforms import ReconciliationSettings
from transforms.dbt import compiled_tests, run_tests
from transforms.marts import EXCEPTION_TYPES, MARTS


def _normalise(value):
    # psycopg2 and duckdb return timestamptz in different tzinfo objects: compare instants
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def _mart_rows(env, mart: str) -> list[tuple]:
    return [tuple(_normalise(v) for v in row.values()) for row in env.rows(mart)]


@pytest.mark.postgres
def test_duckdb_and_postgres_produce_the_same_rows(cases_duckdb, cases_postgres):
    duck, pg = cases_duckdb, cases_postgres
    for mart in MARTS:
        duck_rows, pg_rows = _mart_rows(duck, mart), _mart_rows(pg, mart)
        assert len(duck_rows) == len(pg_rows) > 0, mart
        for d, p in zip(duck_rows, pg_rows, strict=True):
            assert d == p, f"{mart}: DuckDB {d} != Postgres {p}"
    # the comparison is over something: every kind of exception the cases stage shows up
    # (the raw duplicates are in another build: they break the integrity tests on purpose)
    assert {e["exception_type"] for e in pg.exceptions()} == set(EXCEPTION_TYPES) - {"duplicate_payment"}
    # and both databases typed the money columns DECIMAL(18,2), every column as declared
    for env in (duck, pg):
        _, types_rows = env.warehouse.query(
            "SELECT table_name, column_name, numeric_precision, numeric_scale FROM information_schema.columns "
            f"WHERE table_schema = '{env.marts}' AND data_type IN ('DECIMAL(18,2)', 'numeric')"
        )
        assert types_rows and all((r[2], r[3]) == (18, 2) for r in types_rows)
        for name, mart in MARTS.items():
            assert tuple(env.warehouse.columns_of(env.marts, name)) == mart.column_names, name


@pytest.fixture(scope="module")
def integrity_sql(cases_duckdb):
    """name → compiled SQL of every dbt data test, on the shared DuckDB build."""
    env = cases_duckdb
    return compiled_tests(env.warehouse.target(env.raw, env.marts), ReconciliationSettings(as_of="latest_sync"))


def test_integrity_tests_pass_through_dbt_on_every_case(cases):
    results = run_tests(cases.warehouse.target(cases.raw, cases.marts), ReconciliationSettings(as_of="latest_sync"))
    assert {r.name for r in results} == set(CORRUPTIONS)
    assert all(r.ok for r in results), [r for r in results if not r.ok]


# How to break each integrity test: a statement that corrupts the marts (or the raw data) the
# way the test is meant to catch. Every test must have one, and each must make it fail.
CORRUPTIONS = {
    **{
        f"one_row_per_key__{name}": f"INSERT INTO {{marts}}.{name} SELECT * FROM {{marts}}.{name} LIMIT 1"
        for name in MARTS
    },
    # a payment counted in a second payout: the payouts' linked counts no longer add up
    "no_payment_in_two_payouts": "UPDATE {marts}.payout_reconciliation SET linked_payments_count = linked_payments_count + 1 "
    "WHERE payout_id = 'A' AND merchant = 'held'",
    "payments_total_equals_raw": "UPDATE {marts}.payments_reconciled SET amount = amount + 0.01 WHERE payment_id = 'P2'",
    "payouts_total_equals_raw": "DELETE FROM {marts}.payout_reconciliation WHERE payout_id = 'B'",
    "orders_total_equals_raw": "UPDATE {marts}.order_reconciliation SET successful_payments_count = 3 WHERE order_id = 'O1'",
    "daily_summary_total_equals_raw": "UPDATE {marts}.daily_settlement_summary SET gross_amount = gross_amount + 0.01 "
    "WHERE successful_payments_count > 0 AND merchant = 'refund'",
    "exceptions_name_known_entities": "UPDATE {marts}.reconciliation_exceptions SET entity_id = 'NOT-A-PAYMENT' "
    "WHERE exception_type = 'orphan_payment'",
}


def test_every_integrity_test_has_a_corruption_case(integrity_sql):
    assert set(integrity_sql) == set(CORRUPTIONS)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_integrity_test_fails_on_bad_data(cases_duckdb, integrity_sql, name):
    env = cases_duckdb
    sql = integrity_sql[name]
    assert env.warehouse.query_dicts(sql) == []
    env.sql("BEGIN")
    try:
        env.sql(CORRUPTIONS[name])
        assert env.warehouse.query_dicts(sql) != [], f"{name} did not notice: {CORRUPTIONS[name]}"
    finally:
        env.sql("ROLLBACK")
    assert env.warehouse.query_dicts(sql) == []


def test_a_payment_counted_in_two_payouts_is_caught(cases_duckdb, integrity_sql):
    """The per-payment branch: a second row for a payment, pointing at another payout."""
    env = cases_duckdb
    env.sql("BEGIN")
    try:
        env.sql(
            "INSERT INTO {marts}.payments_reconciled (merchant, payment_id, payout_id, payout_found, status) "
            "SELECT merchant, payment_id, 'B', TRUE, status FROM {marts}.payments_reconciled "
            "WHERE payment_id = 'P1' AND merchant = 'held'"
        )
        problems = {r["problem"] for r in env.warehouse.query_dicts(integrity_sql["no_payment_in_two_payouts"])}
    finally:
        env.sql("ROLLBACK")
    assert "payment linked to more than one payout" in problems


def test_raw_duplicates_break_the_totals_and_raise_an_exception():
    """Copies in raw (the source failed to merge) are bad data: the totals tests show it, when
    dbt runs them."""
    env = duckdb_env()
    try:
        env.create_raw()
        cases.load_scenarios(env, ["held", "refund"])
        env.sql("INSERT INTO {raw}.payments SELECT * FROM {raw}.payments WHERE id = 'P2' AND merchant = 'held'")
        env.build(as_of="latest_sync")
        results = run_tests(env.warehouse.target(env.raw, env.marts), ReconciliationSettings(as_of="latest_sync"))
        assert sorted(r.name for r in results if not r.ok) == [
            "daily_summary_total_equals_raw", "payments_total_equals_raw"
        ]
        assert all(r.status == "fail" and r.failures > 0 for r in results if not r.ok)
        dup = [e for e in env.exceptions() if e["exception_type"] == "duplicate_payment"]
        assert [(e["entity_id"], e["amount_at_stake"]) for e in dup] == [("P2", Decimal("500.00"))]
    finally:
        drop_env(env)


def test_every_exception_has_its_declared_severity(cases):
    for e in cases.exceptions():
        declared = EXCEPTION_TYPES[e["exception_type"]].severity
        assert e["severity"] in declared.split(" or "), e
