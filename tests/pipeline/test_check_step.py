"""The check step as `make check` runs it: great-expectations suites plus the dbt project's data
tests (the integrity queries), on a warehouse built by hand so each failure is exact."""

from __future__ import annotations

import shutil
from decimal import Decimal

import duckdb
import pytest

from pipelines.config import Settings
from pipelines.steps import run_check_step, run_transform_step
from pipelines.warehouse import publish
from tests.raw_fixtures import create_raw_tables, insert_rows


def settings_for(tmp_path) -> Settings:
    return Settings(base_url="http://unused", client_id=None, client_secret=None, merchants=(), refresh_tokens={},
                    token_store_path=tmp_path / "t.json", duckdb_path=tmp_path / "w.duckdb",
                    pipelines_dir=tmp_path / "pipelines")


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory):
    """The warehouse built once by the transform step (dbt), for each test to copy."""
    tmp_path = tmp_path_factory.mktemp("check-step")
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
    publish(settings)  # the checks judge what analysts see: the published copy
    return settings.duckdb_path


@pytest.fixture
def build(clean_file, tmp_path):
    def make(*, broken: bool) -> Settings:
        settings = settings_for(tmp_path)
        shutil.copyfile(clean_file, settings.duckdb_path)
        if broken:
            # a mart row the raw data does not have: a total that no longer matches, a key twice
            conn = duckdb.connect(str(settings.duckdb_path))
            conn.execute("INSERT INTO instamojo.payments_reconciled SELECT * FROM instamojo.payments_reconciled")
            conn.close()
        return settings

    return make


def test_clean_warehouse_passes_suites_and_integrity(build, monkeypatch):
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    ok, lines = run_check_step(build(broken=False))
    assert ok, "\n".join(lines)
    assert any("integrity tests (dbt): all" in line for line in lines)


def test_a_broken_mart_fails_the_integrity_queries(build, monkeypatch):
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    ok, lines = run_check_step(build(broken=True))
    assert not ok
    assert "integrity tests (dbt): FAILED" in lines
    failed = {line.split()[2].rstrip(":") for line in lines if "integrity FAILED" in line}
    # the copied row: a key twice, totals that no longer equal the raw ones, a payment counted twice
    assert failed == {"one_row_per_key__payments_reconciled", "payments_total_equals_raw", "no_payment_in_two_payouts"}


def test_the_suites_judge_only_the_merchants_given(build, monkeypatch):
    """A sync's check step judges the merchants it changed: a broken mart row of another
    merchant is not its business (the full pass, `make check`, finds it)."""
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    settings = build(broken=True)  # merchant m1's payment twice
    _, lines = run_check_step(settings, changed_merchants=["m2"], suites=["marts"])
    text = "\n".join(lines)
    assert "ERROR instamojo.payments_reconciled" not in text
    ok_full, lines_full = run_check_step(settings, suites=["marts"])
    assert not ok_full and "ERROR instamojo.payments_reconciled" in "\n".join(lines_full)
