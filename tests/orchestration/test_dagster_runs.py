"""The code location end to end, as a deployment runs it: every shard partition of the raw assets
in its own process at the same time (on an empty Postgres schema: the first loads must not race),
then the marts job (the raw suites, dbt build, the marts suites); the sandbox over HTTP, the real
Postgres, real dbt, real Dagster with a persistent instance.

- the warehouse equals the sandbox's truth, and the marts equal what `make sync` builds;
- the sandbox clock moves and everything runs again: incremental, nothing twice;
- a revoked merchant fails its shard's run by name while the others land; an injected anomaly
  fails its asset check and the marts downstream do not build;
- with DuckDB, shards one at a time, the published copy holding everything, and more than one
  shard at once refused."""

from __future__ import annotations

import pytest

from instamojo_sandbox import SandboxConfig
from orchestration.shards import merchants_of, shard_keys
from tests.orchestration.dagster_helpers import (
    WHOLE_HISTORY,
    Deployment,
    deployment_for,
    drop_schemas,
)
from tests.pipeline_helpers import (
    POSTGRES_DSN,
    drop_postgres_schemas,
    pipeline_settings,
)
from tests.source.truth import assert_warehouse_matches, count_where
from transforms.warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _ok(results: list[tuple[int, str]]) -> None:
    for code, output in results:
        assert code == 0, output[-4000:]


def _marts(wh: Warehouse, schema: str) -> dict[str, list[tuple]]:
    from transforms.marts import MARTS

    out = {}
    for name in MARTS:
        _, rows = wh.query(f"SELECT * FROM {schema}.{name}")
        out[name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def _plain_sync_and_build(settings, as_of) -> None:
    """What `make sync` does: one run of the engine over every merchant, then the marts."""
    from pipelines.steps import run_transform_step
    from pipelines.sync import sync_merchants

    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    ok, lines = run_transform_step(settings, changed_merchants=run.changed_merchants, as_of=as_of)
    assert ok, lines


def _round(deployment: Deployment) -> None:
    _ok(deployment.run_parallel("sync_shards", shard_keys(3)))
    _ok(deployment.run_parallel("build_marts", [None]))


@pytest.mark.postgres
def test_parallel_shards_then_the_marts_equal_the_truth_and_make_sync_then_stay_equal(sandbox_factory, tmp_path):
    import dagster as dg

    sb = sandbox_factory(SandboxConfig(seed=131, profile="small", merchants=6, days=10, payments_per_day=5,
                                       page_size=10))
    deployment = deployment_for(sb, tmp_path, shards=3)
    plain = pipeline_settings(sb, tmp_path / "plain", destination="postgres", **WHOLE_HISTORY)
    assert all(merchants_of(k, sb.merchants) for k in shard_keys(3))  # no shard idle: 3 parallel loads
    wh = Warehouse.postgres(POSTGRES_DSN)
    try:
        _round(deployment)
        counts = assert_warehouse_matches(wh, deployment.raw_dataset, sb, sb.merchants)
        # each shard its own pipeline, with its own staging dataset (dlt-hub/dlt#4297)
        _, staging = wh.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                              (f"{deployment.raw_dataset}_staging_%",))
        assert sorted(r[0] for r in staging) == [f"{deployment.raw_dataset}_staging_{k}" for k in shard_keys(3)]
        instance = deployment.instance()
        assert instance.get_materialized_partitions(dg.AssetKey(["raw", "payments"])) == set(shard_keys(3))
        assert instance.get_latest_materialization_event(dg.AssetKey(["marts", "payout_reconciliation"]))
        _plain_sync_and_build(plain, sb.now)
        assert _marts(wh, deployment.marts_dataset) == _marts(wh, plain.marts_dataset)

        sb.advance(days=2)
        deployment.env["TRANSFORMS__AS_OF"] = sb.now.isoformat()
        _round(deployment)
        # equal to the truth again; a key seen twice fails (nothing duplicated)
        later = assert_warehouse_matches(wh, deployment.raw_dataset, sb, sb.merchants)
        assert later["payments"] > counts["payments"]
        assert count_where(wh, f"SELECT count(*) FROM {deployment.raw_dataset}.payments") == later["payments"]
        # the marts rebuilt the changed merchants: one row per raw payment, none twice
        assert count_where(wh, f"SELECT count(*) FROM {deployment.marts_dataset}.payments_reconciled") \
            == later["payments"]
        assert count_where(wh, f"SELECT count(DISTINCT (merchant, payment_id)) FROM "
                               f"{deployment.marts_dataset}.payments_reconciled") == later["payments"]
    finally:
        wh.close()
        drop_schemas(deployment)
        drop_postgres_schemas(plain)


@pytest.mark.postgres
def test_a_revoked_merchant_fails_its_shard_by_name_and_an_anomaly_blocks_the_marts(sandbox_factory, tmp_path):
    import dagster as dg

    sb = sandbox_factory(SandboxConfig(seed=131, profile="small", merchants=4, days=10, payments_per_day=5,
                                       page_size=10))
    deployment = deployment_for(sb, tmp_path, shards=2)
    crowded = max(shard_keys(2), key=lambda k: len(merchants_of(k, sb.merchants)))
    revoked, *healthy_neighbours = merchants_of(crowded, sb.merchants)
    assert healthy_neighbours, "the revoked merchant needs a healthy neighbour in its shard"
    healthy = [m for m in sb.merchants if m != revoked]
    sb.revoke(merchant=revoked)
    orphan = sb.anomalies.inject("orphan_payment", healthy[0])
    wh = Warehouse.postgres(POSTGRES_DSN)
    try:
        results = dict(zip(shard_keys(2), deployment.run_parallel("sync_shards", shard_keys(2)), strict=True))
        code, output = results[crowded]
        assert code != 0
        assert f"1 of {1 + len(healthy_neighbours)} merchant(s) failed: {revoked}:" in output
        assert "make authorize" in output and "The other merchants of the shard landed." in output
        _ok([r for k, r in results.items() if k != crowded])
        assert_warehouse_matches(wh, deployment.raw_dataset, sb, healthy)
        assert count_where(wh, f"SELECT count(*) FROM {deployment.raw_dataset}.payments "
                               f"WHERE merchant = '{revoked}'") == 0
        # a merchant's failure is not retried by Dagster (its token needs a person); one attempt
        instance = deployment.instance()
        [run] = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == crowded]
        kinds = [e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event]
        assert "STEP_FAILURE" in kinds and "STEP_UP_FOR_RETRY" not in kinds

        [(code, output)] = deployment.run_parallel("build_marts", [None])
        assert code != 0
        [marts_run] = [r for r in instance.get_runs() if r.job_name == "build_marts"]
        evaluations = [e.dagster_event.event_specific_data for e in instance.all_logs(marts_run.run_id)
                       if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        failed = {ev.asset_key.to_user_string(): ev for ev in evaluations if not ev.passed}
        assert set(failed) == {"raw/payments"}, failed
        assert failed["raw/payments"].severity == dg.AssetCheckSeverity.ERROR
        assert orphan["payment_id"] in failed["raw/payments"].description
        # blocked: no mart materialized, dbt never ran
        assert instance.get_latest_materialization_event(dg.AssetKey(["marts", "payments_reconciled"])) is None
        assert "Dependencies for step instamojo_marts failed" in output
    finally:
        wh.close()
        drop_schemas(deployment)


def test_duckdb_shards_one_at_a_time_a_deep_run_and_the_published_copy(sandbox_factory, tmp_path):
    import duckdb

    sb = sandbox_factory(SandboxConfig(seed=131, profile="small", merchants=3, days=10, payments_per_day=5,
                                       page_size=10))
    deployment = deployment_for(sb, tmp_path, shards=2, destination="duckdb")
    published = tmp_path / "warehouse.duckdb"
    # one writer per file: the shards one after the other (the pool's limit is 1); the second as
    # the nightly deep run (its run config)
    first, second = shard_keys(2)
    _ok(deployment.run_parallel("sync_shards", [first]))
    _ok(deployment.run_parallel("sync_shards", [second], {"ops": {"instamojo_raw": {"config": {"lookback_days": 30}}}}))
    _ok(deployment.run_parallel("build_marts", [None]))
    wh = Warehouse(duckdb.connect(str(published), read_only=True), "duckdb")
    try:
        counts = assert_warehouse_matches(wh, deployment.raw_dataset, sb, sb.merchants)
        assert count_where(wh, f"SELECT count(*) FROM {deployment.marts_dataset}.payments_reconciled") \
            == counts["payments"]
    finally:
        wh.close()
    # more than one shard at once is refused with DuckDB, naming the setting
    deployment.env["ORCHESTRATION__MAX_PARALLEL_SHARDS"] = "2"
    [(code, output)] = deployment.run_parallel("sync_shards", [first])
    assert code != 0 and "orchestration.max_parallel_shards = 2" in output and "one writer" in output
