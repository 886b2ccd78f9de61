"""The checks over data the real pipeline synced from the sandbox (over loopback HTTP): a clean
sandbox passes every suite; each sandbox anomaly fails the expectation that guards it, through
the same step `make check` runs (`pipelines.steps.run_check_step`), naming the offending id; the
anomalies the source absorbs (a record served twice, a new field) do not fail the run.

"Now" is the sandbox's clock (its data is generated around a fixed date, not the wall clock):
the marts are built `as_of=sb.now`, and freshness is measured at `sb.now`."""

from __future__ import annotations

import datetime as dt

import pytest

from checks import CheckSettings, run_checks
from instamojo_sandbox import SandboxConfig
from tests.pipeline_helpers import drop_postgres_schemas, sync_and_build_marts
from transforms.warehouse import Warehouse


def _sync_and_build(sb, tmp_path, destination: str = "duckdb"):
    settings, warehouse, _ = sync_and_build_marts(sb, tmp_path, destination)
    return settings, warehouse


def _check(warehouse, settings, tmp_path, **kwargs):
    kwargs.setdefault("docs_dir", tmp_path / "docs")
    return run_checks(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                      settings=CheckSettings(**kwargs))


def _assert_clean(report) -> None:
    assert report.ok, report.summary()
    assert {s.status for s in report.suites} == {"passed"}, report.summary()
    assert len(report.suites) == 16
    results = [r for s in report.suites for r in s.results]
    assert all(r.success is True and r.raised is None for r in results)


def test_clean_sandbox_passes_every_suite_and_stale_data_fails_freshness(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    settings, warehouse = _sync_and_build(sb, tmp_path)
    try:
        report = _check(warehouse, settings, tmp_path, now=sb.now, freshness_max_age=dt.timedelta(hours=48))
        _assert_clean(report)
        assert report.docs_index is not None and report.docs_index.is_file()

        # ten days later with no new data: every merchant is stale
        later = _check(warehouse, settings, tmp_path, suites=("raw.payments",), docs_dir=None,
                       now=sb.now + dt.timedelta(days=10), freshness_max_age=dt.timedelta(hours=48))
        assert not later.ok
        [stale] = later.suite("raw.payments").failures
        assert stale.what.startswith("every merchant's newest payment is at most 2 days old")
        assert sorted(o.split(" ")[0] for o in stale.offending) == sorted(sb.merchants)
    finally:
        warehouse.close()


def test_each_sandbox_anomaly_fails_its_expectation(sandbox_factory, tmp_path, monkeypatch):
    from pipelines.steps import run_check_step

    sb = sandbox_factory()
    first, second = sb.merchants[:2]
    orphan = sb.anomalies.inject("orphan_payment", first)
    unbalanced = sb.anomalies.inject("unbalanced_payout", first, delta="123.45")
    short = sb.anomalies.inject("short_paid_order", second)
    not_a_number = sb.anomalies.inject("non_numeric_amount", second, endpoint="payments")
    # absorbed by the source (merge on keys; schema evolution): no error
    duplicate = sb.anomalies.inject("duplicate_across_pages", first, endpoint="payments", page=1)
    unknown = sb.anomalies.inject("unknown_field", second, endpoint="payments")

    settings, warehouse = _sync_and_build(sb, tmp_path)
    warehouse.close()  # the check step opens its own connection, as `make check` does
    from pipelines.warehouse import publish

    publish(settings)  # the checks judge what analysts see: the published copy
    monkeypatch.setenv("CHECKS__DOCS_DIR", str(tmp_path / "docs"))
    ok, lines = run_check_step(settings, freshness=False)
    summary = "\n".join(lines)
    assert not ok, summary

    def line(fragment: str) -> str:
        found = [line_.strip() for line_ in lines if fragment in line_]
        assert found, f"no line with {fragment!r}:\n{summary}"
        return found[0]

    raw, marts = settings.raw_dataset, settings.marts_dataset
    assert f"{first}/{orphan['payment_id']} (payout_id='{orphan['payout_id']}')" in line(
        f"ERROR {raw}.payments: every payout_id names a row of payouts")
    assert f"{first}/{unbalanced['payout_id']} (residual=123.45" in line(
        f"ERROR {marts}.payout_reconciliation: every payout's |residual| ≤ ₹0.00")
    assert f"{second}/{short['order_id']} (status='status_mismatch', api_order_status='Fully Paid', " \
           f"balance_due={short['shortfall']})" in line(f"ERROR {marts}.order_reconciliation: no order's API status")
    assert f"{second}/{not_a_number['id']} (amount__v_text='N/A')" in line(
        f"ERROR {raw}.payments: amount__v_text is empty")
    assert f"{second}/{not_a_number['id']}" in line(f"ERROR {raw}.payments: amount is never null")
    # the record served on two pages was merged into one row: uniqueness holds
    assert "is unique (primary key)" not in summary
    # the new field is kept and reported, as a warning
    assert f"unexpected column {unknown['field']}" in line(f"WARN  {raw}.payments: no column beyond the raw-table contract")
    errors = [line_ for line_ in lines if line_.strip().startswith("ERROR")]
    assert len(errors) == 5, summary
    assert duplicate["id"] not in summary


@pytest.mark.slow
@pytest.mark.postgres
def test_clean_sandbox_passes_every_suite_on_postgres(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    settings, warehouse = _sync_and_build(sb, tmp_path, destination="postgres")
    try:
        _assert_clean(_check(warehouse, settings, tmp_path, now=sb.now, freshness_max_age=dt.timedelta(hours=48)))
    finally:
        warehouse.close()
        drop_postgres_schemas(settings)
        # and dbt's working schema (staging and intermediate tables) beside the marts
        wh = Warehouse.postgres(settings.postgres_credentials)
        try:
            wh.execute(f"DROP SCHEMA IF EXISTS {settings.marts_dataset}_staging CASCADE")
        finally:
            wh.close()


@pytest.mark.slow
def test_demo_sized_warehouse_built_by_the_pipeline_passes(sandbox_factory, tmp_path):
    """What CI runs the checks on: the demo profile (3 merchants, 60 days), synced by the real
    pipeline, marts built, every suite green."""
    sb = sandbox_factory(SandboxConfig(seed=1, profile="demo"))
    settings, warehouse = _sync_and_build(sb, tmp_path)
    try:
        report = _check(warehouse, settings, tmp_path, now=sb.now, freshness_max_age=dt.timedelta(hours=48))
        _assert_clean(report)
        assert report.suite("raw.payments").rows > 5000
    finally:
        warehouse.close()
