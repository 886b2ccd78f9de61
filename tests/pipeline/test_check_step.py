"""The check step as `make check` runs it: great-expectations suites plus the transforms'
integrity queries, on a warehouse built by hand so each failure is exact."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from pipelines.config import Settings
from pipelines.steps import run_check_step, run_transform_step
from pipelines.warehouse import publish
from tests.raw_fixtures import create_raw_tables, insert_rows


def settings_for(tmp_path) -> Settings:
    return Settings(base_url="http://unused", client_id=None, client_secret=None, merchants=(), refresh_tokens={},
                    token_store_path=tmp_path / "t.json", duckdb_path=tmp_path / "w.duckdb",
                    pipelines_dir=tmp_path / "pipelines")


def build(tmp_path, *, broken: bool) -> Settings:
    settings = settings_for(tmp_path)
    settings.duckdb_work_path.parent.mkdir(parents=True)
    conn = duckdb.connect(str(settings.duckdb_work_path))
    create_raw_tables(conn, "instamojo_raw")
    insert_rows(conn, "instamojo_raw", "payouts", [{
        "id": "PO1", "status": True, "paid_out_at": "2024-11-08T06:30:00Z", "currency": "INR",
        "paid_amount": Decimal("972.86"), "sales_amount": Decimal("1000.00"), "fee_amount": Decimal("23.00"),
        "total_tax_amount": Decimal("4.14"), "held_amount": Decimal("0.00"), "reversed_amount": Decimal("0.00"),
        "refunded_amount": Decimal("0.00"), "affiliate_commission_amount": Decimal("0.00"),
        "partner_commission_amount": Decimal("0.00"), "shipping_fee": Decimal("0.00"), "payout_type": 0,
    }])
    insert_rows(conn, "instamojo_raw", "payments", [{
        "id": "P1", "status": True, "currency": "INR", "amount": Decimal("1000.00"), "fees": Decimal("23.00"),
        "total_taxes": Decimal("4.14"), "payout_id": "PO1", "created_at": "2024-11-04T05:00:00Z",
        "updated_at": "2024-11-08T06:30:00Z",
    }])
    conn.close()
    ok, lines = run_transform_step(settings, as_of="latest_activity")
    assert ok, lines
    if broken:
        # a mart row the raw data does not have: a total that no longer matches, a key twice
        conn = duckdb.connect(str(settings.duckdb_work_path))
        conn.execute("INSERT INTO instamojo.payments_reconciled SELECT * FROM instamojo.payments_reconciled")
        conn.close()
    publish(settings)  # the checks judge what analysts see
    return settings


def test_clean_warehouse_passes_suites_and_integrity(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    ok, lines = run_check_step(build(tmp_path, broken=False))
    assert ok, "\n".join(lines)
    assert any("integrity queries: all" in line for line in lines)


def test_a_broken_mart_fails_the_integrity_queries(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    ok, lines = run_check_step(build(tmp_path, broken=True))
    assert not ok
    assert "integrity queries: FAILED" in lines
    assert any("integrity FAILED" in line for line in lines)
