"""The marts over data the real pipeline synced from the sandbox (over loopback HTTP): a clean
sandbox yields no exception and balanced payouts; each injected anomaly yields exactly its
exception, once, with the id and amount the sandbox's ground truth records.

"Now" for the overdue checks is the sandbox's clock (`as_of=sb.now`): the sandbox's data is
generated around a fixed date, not the wall clock the pipeline stamps `_synced_at` with."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest

from pipelines.sync import sync_merchant
from tests.pipeline_helpers import (
    drop_postgres_schemas,
    open_test_warehouse,
    pipeline_settings,
    sync_all,
    sync_and_build_marts,
)
from transforms import ReconciliationSettings, build_marts
from transforms.dbt import run_tests
from transforms.marts import MARTS


def _sync_and_build(sb, tmp_path, destination: str = "duckdb"):
    return sync_and_build_marts(sb, tmp_path, destination)


def test_clean_sandbox_has_no_exceptions_and_balanced_payouts(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    settings, warehouse, report = _sync_and_build(sb, tmp_path)
    try:
        marts = settings.marts_dataset
        assert report.exceptions_by_type == {}
        assert warehouse.query_dicts(f"SELECT * FROM {marts}.reconciliation_exceptions") == []
        payouts = warehouse.query_dicts(f"SELECT payout_id, status, residual, sales_difference FROM {marts}.payout_reconciliation")
        assert payouts and all(
            (p["status"], p["residual"], p["sales_difference"]) == ("balanced", Decimal("0.00"), Decimal("0.00"))
            for p in payouts
        )
        integrity = run_tests(warehouse.target(settings.raw_dataset, marts), ReconciliationSettings(as_of=sb.now))
        assert integrity and all(r.ok for r in integrity), [r for r in integrity if not r.ok]
        # "latest_activity" (for data on the sandbox's clock, e.g. make demo) agrees
        again = build_marts(warehouse, raw_schema=settings.raw_dataset, marts_schema=marts,
                            settings=ReconciliationSettings(as_of="latest_activity"), full_refresh=True)
        assert again.exceptions_by_type == {}

        # the sandbox's ground truth: which payout settled each payment
        for merchant in sb.merchants:
            rel = sb.relations(merchant)
            truth = {pid: payout_id for payout_id, p in _settled(rel).items() for pid in p}
            ph = warehouse.placeholder
            rows = warehouse.query_dicts(
                f"SELECT payment_id, payout_id, settlement_state FROM {marts}.payments_reconciled WHERE merchant = {ph}",
                (merchant,),
            )
            linked = {r["payment_id"]: r["payout_id"] for r in rows if r["payout_id"] is not None}
            assert linked == truth
            assert {r["settlement_state"] for r in rows} <= {"settled", "awaiting_payout", "failed", "pending"}
    finally:
        warehouse.close()


def _settled(relations: dict) -> dict[str, list[str]]:
    """payout id → ids of the payments it settled (held ones included), per the sandbox."""
    return {payout_id: rel["settled"] for payout_id, rel in relations["payouts"].items()}


def test_each_sandbox_anomaly_yields_exactly_its_exception(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    first, second = sb.merchants[:2]
    orphan = sb.anomalies.inject("orphan_payment", first)
    unbalanced = sb.anomalies.inject("unbalanced_payout", first, delta="123.45")
    short = sb.anomalies.inject("short_paid_order", second)
    not_a_number = sb.anomalies.inject("non_numeric_amount", second, endpoint="payments")
    # absorbed by the source (merge on keys, schema evolution): no exception
    sb.anomalies.inject("duplicate_across_pages", first, endpoint="payments", page=1)
    sb.anomalies.inject("unknown_field", second, endpoint="payments")

    settings, warehouse, report = _sync_and_build(sb, tmp_path)
    try:
        rows = warehouse.query_dicts(
            f"SELECT merchant, exception_type, entity_id, related_id, amount_at_stake, explanation "
            f"FROM {settings.marts_dataset}.reconciliation_exceptions ORDER BY exception_type"
        )
        found = sorted((r["merchant"], r["exception_type"], r["entity_id"], r["amount_at_stake"]) for r in rows)
        assert found == sorted([
            (first, "orphan_payment", orphan["payment_id"], Decimal(orphan["amount"])),
            (first, "payout_residual", unbalanced["payout_id"], Decimal("123.45")),
            (second, "order_status_mismatch", short["order_id"], Decimal(short["shortfall"])),
            (second, "invalid_amount", not_a_number["id"], None),
        ])
        by_type = {r["exception_type"]: r for r in rows}
        assert by_type["orphan_payment"]["related_id"] == orphan["payout_id"]
        assert '"N/A"' in by_type["invalid_amount"]["explanation"]
        assert report.exceptions_by_type == {
            "invalid_amount": 1, "order_status_mismatch": 1, "orphan_payment": 1, "payout_residual": 1
        }
    finally:
        warehouse.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_sandbox_marts_are_the_same_on_duckdb_and_postgres(sandbox_factory, tmp_path):
    """The same sandbox synced into DuckDB and into Postgres: every mart row the same."""
    sb = sandbox_factory()
    sb.anomalies.inject("orphan_payment", sb.merchants[0])
    sb.anomalies.inject("short_paid_order", sb.merchants[1])
    duck_settings, duck, _ = _sync_and_build(sb, tmp_path / "duck")
    try:
        pg_settings, pg, _ = _sync_and_build(sb, tmp_path / "pg", destination="postgres")
        try:
            for name, mart in MARTS.items():
                order = ", ".join(mart.key)
                d = duck.query(f"SELECT * FROM {duck_settings.marts_dataset}.{name} ORDER BY {order}")[1]
                p = pg.query(f"SELECT * FROM {pg_settings.marts_dataset}.{name} ORDER BY {order}")[1]
                assert len(d) == len(p) > 0, name
                assert [_utc(r) for r in d] == [_utc(r) for r in p], name
        finally:
            pg.close()
            _drop(pg_settings)
    finally:
        duck.close()


def _utc(row: tuple) -> tuple:
    return tuple(v.astimezone(UTC) if hasattr(v, "astimezone") and getattr(v, "tzinfo", None) else v for v in row)


def _drop(settings) -> None:
    drop_postgres_schemas(settings)
    if settings.destination == "postgres":
        wh = open_test_warehouse(settings)
        try:
            wh.execute(f"DROP SCHEMA IF EXISTS {settings.marts_dataset}_staging CASCADE")
        finally:
            wh.close()


def _all_marts(warehouse, marts_schema: str) -> dict[str, list[tuple]]:
    out = {}
    for name, mart in MARTS.items():
        order = ", ".join(mart.column_names)
        out[name] = [_utc(r) for r in warehouse.query(f"SELECT * FROM {marts_schema}.{name} ORDER BY {order}")[1]]
    return out


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incremental_build_after_the_clock_moves_equals_a_full_rebuild(sandbox_factory, tmp_path, destination):
    """Sync, build; move the sandbox's clock and sync one merchant again: the incremental build
    rebuilds only that merchant (found by its rows' _synced_at); move it again and sync the other
    merchant, named by the caller this time: every mart then holds exactly the rows a full
    rebuild gives."""
    sb = sandbox_factory()
    first, second = sb.merchants[:2]
    settings = pipeline_settings(sb, tmp_path, destination=destination)
    recon = ReconciliationSettings(as_of="latest_activity")  # the sandbox's clock, per merchant
    warehouse = None
    try:
        assert all(r.ok for r in sync_all(settings))
        warehouse = open_test_warehouse(settings)
        target = warehouse.target(settings.raw_dataset, settings.marts_dataset)
        from transforms.dbt import build

        assert build(target, recon).full_refresh  # the first build: every merchant
        before = _all_marts(warehouse, settings.marts_dataset)

        sb.advance(days=4)
        assert sync_merchant(settings, first).ok
        report = build(target, recon)  # changed merchants unknown: found from _synced_at
        assert (report.full_refresh, report.rebuilt_merchants) == (False, (first,)), report.reason
        assert _all_marts(warehouse, settings.marts_dataset) != before  # new payments and payouts

        sb.advance(days=2)
        assert sync_merchant(settings, second).ok
        report = build(target, recon, changed_merchants=[second])  # named by the caller
        assert report.rebuilt_merchants == (second,)
        incremental = _all_marts(warehouse, settings.marts_dataset)
        # one full rebuild judges both incremental builds: the first merchant's rows are still
        # those of the first, the second's those of the second
        assert build(target, recon, full_refresh=True).full_refresh
        assert _all_marts(warehouse, settings.marts_dataset) == incremental
    finally:
        if warehouse is not None:
            warehouse.close()
        _drop(settings)
