"""Every hand-computed case at once (one merchant each): DuckDB and Postgres must produce the same
rows, and the integrity queries must return zero rows — and each must fail on bad data."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tests.transforms import cases
from tests.transforms.conftest import drop_env, duckdb_env, postgres_env
from transforms import run_integrity_checks
from transforms.integrity import integrity_queries
from transforms.marts import EXCEPTION_TYPES, MARTS


def load_all_cases(env) -> None:
    env.create_raw()
    for i, case in enumerate(cases.ALL_CASES):
        case(env, f"m{i:02d}_{case.__name__}")


@pytest.fixture
def all_cases_duckdb():
    env = duckdb_env()
    load_all_cases(env)
    env.build()
    yield env
    drop_env(env)


@pytest.fixture(scope="module")
def built_once():
    """All cases built once for tests that only read, or change the marts inside a transaction
    they roll back."""
    env = duckdb_env()
    load_all_cases(env)
    env.build()
    yield env
    drop_env(env)


def _normalise(value):
    # psycopg2 and duckdb return timestamptz in different tzinfo objects: compare instants
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return value


def _mart_rows(env, mart: str) -> list[tuple]:
    return [tuple(_normalise(v) for v in row.values()) for row in env.rows(mart)]


@pytest.mark.postgres
def test_duckdb_and_postgres_produce_the_same_rows(all_cases_duckdb):
    pg = postgres_env()
    try:
        load_all_cases(pg)
        pg.build()
        for mart in MARTS:
            duck_rows, pg_rows = _mart_rows(all_cases_duckdb, mart), _mart_rows(pg, mart)
            assert len(duck_rows) == len(pg_rows), mart
            for d, p in zip(duck_rows, pg_rows):
                assert d == p, f"{mart}: DuckDB {d} != Postgres {p}"
        # the comparison is over something: every kind of exception the cases stage shows up
        types = {e["exception_type"] for e in pg.exceptions()}
        assert types >= set(EXCEPTION_TYPES) - {"duplicate_payment", "failed_payment_in_payout"}
        # and both databases typed the money columns DECIMAL(18,2)
        for warehouse, schema in ((all_cases_duckdb.warehouse, all_cases_duckdb.marts), (pg.warehouse, pg.marts)):
            _, types_rows = warehouse.query(
                "SELECT table_name, column_name, numeric_precision, numeric_scale FROM information_schema.columns "
                f"WHERE table_schema = '{schema}' AND data_type IN ('DECIMAL(18,2)', 'numeric')"
            )
            assert types_rows and all((r[2], r[3]) == (18, 2) for r in types_rows)
    finally:
        drop_env(pg)


def test_integrity_queries_hold_on_every_case(built_once):
    results = run_integrity_checks(built_once.warehouse, raw_schema=built_once.raw, marts_schema=built_once.marts)
    assert results and all(rows == [] for rows in results.values()), {k: v for k, v in results.items() if v}


@pytest.mark.postgres
def test_integrity_queries_hold_on_postgres():
    pg = postgres_env()
    try:
        load_all_cases(pg)
        pg.build()
        results = run_integrity_checks(pg.warehouse, raw_schema=pg.raw, marts_schema=pg.marts)
        assert all(rows == [] for rows in results.values()), {k: v for k, v in results.items() if v}
    finally:
        drop_env(pg)


# How to break each integrity query: a statement that corrupts the marts (or the raw data) the
# way the query is meant to catch. Every query must have one, and each must make it fail.
CORRUPTIONS = {
    **{
        f"one_row_per_key__{name}": f"INSERT INTO {{marts}}.{name} SELECT * FROM {{marts}}.{name} LIMIT 1"
        for name in MARTS
    },
    # a payment counted in a second payout: the payouts' linked counts no longer add up
    "no_payment_in_two_payouts": "UPDATE {marts}.payout_reconciliation SET linked_payments_count = linked_payments_count + 1 "
    "WHERE payout_id = 'A' AND merchant LIKE '%held_then_released'",
    "payments_total_equals_raw": "UPDATE {marts}.payments_reconciled SET amount = amount + 0.01 WHERE payment_id = 'P2'",
    "payouts_total_equals_raw": "DELETE FROM {marts}.payout_reconciliation WHERE payout_id = 'B'",
    "orders_total_equals_raw": "UPDATE {marts}.order_reconciliation SET successful_payments_count = 3 WHERE order_id = 'O1'",
    "daily_summary_total_equals_raw": "UPDATE {marts}.daily_settlement_summary SET gross_amount = gross_amount + 0.01 "
    "WHERE successful_payments_count > 0 AND merchant LIKE '%refund_after_payout'",
    "exceptions_name_known_entities": "UPDATE {marts}.reconciliation_exceptions SET entity_id = 'NOT-A-PAYMENT' "
    "WHERE exception_type = 'orphan_payment'",
}


def test_every_integrity_query_has_a_corruption_case(built_once):
    env = built_once
    assert set(integrity_queries(env.warehouse, raw_schema=env.raw, marts_schema=env.marts)) == set(CORRUPTIONS)


@pytest.mark.parametrize("query", sorted(CORRUPTIONS))
def test_each_integrity_query_fails_on_bad_data(built_once, query):
    env = built_once
    sql = integrity_queries(env.warehouse, raw_schema=env.raw, marts_schema=env.marts)[query]
    assert env.warehouse.query_dicts(sql) == []
    env.sql("BEGIN")
    try:
        env.sql(CORRUPTIONS[query])
        assert env.warehouse.query_dicts(sql) != [], f"{query} did not notice: {CORRUPTIONS[query]}"
    finally:
        env.sql("ROLLBACK")
    assert env.warehouse.query_dicts(sql) == []


def test_a_payment_counted_in_two_payouts_is_caught(all_cases_duckdb):
    """The per-payment branch: a second row for a payment, pointing at another payout."""
    env = all_cases_duckdb
    env.sql(
        "INSERT INTO {marts}.payments_reconciled (merchant, payment_id, payout_id, payout_found, status) "
        "SELECT merchant, payment_id, 'B', TRUE, status FROM {marts}.payments_reconciled "
        "WHERE payment_id = 'P1' AND merchant LIKE '%held_then_released'"
    )
    sql = integrity_queries(env.warehouse, raw_schema=env.raw, marts_schema=env.marts)["no_payment_in_two_payouts"]
    problems = {r["problem"] for r in env.warehouse.query_dicts(sql)}
    assert "payment linked to more than one payout" in problems


def test_raw_duplicates_break_the_totals_and_raise_an_exception(all_cases_duckdb):
    """Copies in raw (the source failed to merge) are bad data: the totals query shows it."""
    env = all_cases_duckdb
    env.sql("INSERT INTO {raw}.payments SELECT * FROM {raw}.payments WHERE id = 'P2' AND merchant LIKE '%held_then_released'")
    env.build()
    results = run_integrity_checks(env.warehouse, raw_schema=env.raw, marts_schema=env.marts)
    assert sorted(name for name, rows in results.items() if rows) == [
        "daily_summary_total_equals_raw", "payments_total_equals_raw"
    ]
    dup = [e for e in env.exceptions() if e["exception_type"] == "duplicate_payment"]
    assert [(e["entity_id"], e["amount_at_stake"]) for e in dup] == [("P2", Decimal("500.00"))]


def test_every_exception_has_its_declared_severity(built_once):
    for e in built_once.exceptions():
        declared = EXCEPTION_TYPES[e["exception_type"]].severity
        assert e["severity"] in declared.split(" or "), e
