"""Shards and the code location, without running anything: merchants assigned by a stable hash
(adding one never moves another), the orchestration settings and their errors, the app-wide rate
limit divided among parallel shards, the Definitions loading (and `dagster definitions validate`),
and the plain pipeline never importing Dagster."""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.shards import (
    OrchestrationSettings,
    merchants_of,
    parse_shard_key,
    pipeline_name,
    shard_index,
    shard_keys,
    shard_settings,
)
from pipelines.config import ConfigError, Settings, SourceOptions

REPO = Path(__file__).resolve().parents[2]


def _settings(destination: str = "duckdb", **source) -> Settings:
    return Settings(base_url="http://127.0.0.1:1", client_id="app", client_secret="s", merchants=("a",),
                    refresh_tokens={}, token_store_path=Path("/tmp/x-tokens"), destination=destination,
                    source=SourceOptions(**source))


def test_a_merchants_shard_is_the_sha256_of_its_name_modulo_the_shards():
    for name in ("acme", "globex", "chai_point_co", "मसाला"):
        expected = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 8 + 1
        assert shard_index(name, 8) == expected
    # pinned: the same in every process and Python version (Python's hash() is salted per process)
    assert [shard_index(n, 4) for n in ("acme", "globex", "initech", "umbrella")] == [1, 4, 4, 1]


def test_adding_merchants_never_moves_the_others_and_every_shard_gets_some():
    before = [f"merchant_{i:03d}" for i in range(200)]
    after = before + [f"newcomer_{i:03d}" for i in range(50)]
    keys = shard_keys(4)
    old = {m: k for k in keys for m in merchants_of(k, before)}
    new = {m: k for k in keys for m in merchants_of(k, after)}
    assert len(old) == 200 and len(new) == 250  # every merchant in exactly one shard
    assert all(new[m] == old[m] for m in before)
    assert all(len(merchants_of(k, before)) > 20 for k in keys)


def test_shard_keys_pipeline_names_and_bad_keys():
    assert shard_keys(3) == ["shard_01_of_03", "shard_02_of_03", "shard_03_of_03"]
    assert parse_shard_key("shard_03_of_08") == (3, 8)
    assert pipeline_name("shard_03_of_08") == "instamojo__shard_03_of_08"  # the prefix upgrade.py follows
    for bad in ("shard_09_of_08", "shard_00_of_08", "shard_x_of_2", "03_of_08"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard_key(bad)


def test_settings_defaults_limits_and_the_duckdb_single_writer(monkeypatch):
    monkeypatch.delenv("ORCHESTRATION__SHARDS", raising=False)
    monkeypatch.delenv("ORCHESTRATION__MAX_PARALLEL_SHARDS", raising=False)
    assert OrchestrationSettings.load(_settings("duckdb")) == OrchestrationSettings(shards=4, max_parallel_shards=1)
    assert OrchestrationSettings.load(_settings("postgres")) == OrchestrationSettings(shards=4, max_parallel_shards=2)
    monkeypatch.setenv("ORCHESTRATION__SHARDS", "8")
    monkeypatch.setenv("ORCHESTRATION__MAX_PARALLEL_SHARDS", "3")
    assert OrchestrationSettings.load(_settings("postgres")) == OrchestrationSettings(shards=8, max_parallel_shards=3)
    with pytest.raises(ConfigError, match="max_parallel_shards = 3 .*ORCHESTRATION__MAX_PARALLEL_SHARDS.*DuckDB"):
        OrchestrationSettings.load(_settings("duckdb"))
    monkeypatch.setenv("ORCHESTRATION__SHARDS", "0")
    with pytest.raises(ConfigError, match="orchestration.shards = .0. .*at least 1"):
        OrchestrationSettings.load(_settings("postgres"))


def test_parallel_shards_share_the_app_wide_rate_limit_and_a_deep_run_reads_further_back():
    settings = _settings("postgres", app_max_requests_per_second=50.0, max_requests_per_second=10.0)
    shard = shard_settings(settings, OrchestrationSettings(shards=8, max_parallel_shards=4), lookback_days=30)
    assert shard.source.app_max_requests_per_second == 12.5  # 4 shards at once: 4 × 12.5 = 50
    assert shard.source.max_requests_per_second == 10.0  # per token: a merchant is in one shard
    assert {shard.source.payments_lookback_days, shard.source.payouts_lookback_days,
            shard.source.products_lookback_days, shard.source.orders_lookback_days} == {30}
    unlimited = shard_settings(_settings("postgres"), OrchestrationSettings(4, 2))
    assert unlimited.source.app_max_requests_per_second is None
    assert unlimited.source.payments_lookback_days == SourceOptions().payments_lookback_days


def _location_env(tmp_path: Path) -> dict[str, str]:
    return {"INSTAMOJO_ELT__PIPELINES_DIR": str(tmp_path / "pipelines"), "ORCHESTRATION__SHARDS": "3",
            "INSTAMOJO_ELT__DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"), "DAGSTER_HOME": str(tmp_path)}


def test_the_code_location_loads_with_shards_marts_checks_schedules_and_the_pool(tmp_path, monkeypatch):
    import dagster as dg

    for name, value in _location_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    module = importlib.reload(importlib.import_module("orchestration.definitions"))
    defs = module.defs
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    raw = dg.AssetKey(["raw", "payments"])
    assert defs.resolve_job_def("sync_shards").partitions_def.get_partition_keys() == shard_keys(3)
    node = graph.get(raw)
    assert node.partitions_def.get_partition_keys() == shard_keys(3)
    # dbt's sources are the shards' raw assets: the marts sit downstream of them
    payments_mart = dg.AssetKey(["marts", "payments_reconciled"])
    assert payments_mart in graph.get_all_asset_keys()
    assert raw in graph.get(dg.AssetKey(["staging", "stg_instamojo__payments"])).parent_keys
    checks = {c.to_user_string() for c in graph.asset_check_keys}
    assert {"raw/payments:great_expectations", "marts/payout_reconciliation:great_expectations",
            "marts/payments_reconciled:one_row_per_key__payments_reconciled"} <= checks
    assert all(spec.blocking for spec in module.raw_suites.check_specs)
    assert module.instamojo_raw.op.pool == "instamojo_shards"
    assert module.instamojo_raw.op.retry_policy.max_retries == 2
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["hourly_sync"].cron_schedule == "15 * * * *"
    import datetime as dt

    tick = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 2, 2, 30, tzinfo=dt.UTC))
    nightly = list(module.nightly_deep_sync(tick))
    assert [r.partition_key for r in nightly] == shard_keys(3)
    assert nightly[0].run_config["ops"]["instamojo_raw"]["config"]["lookback_days"] == 30.0
    assert nightly[0].tags[module.LOOKBACK_TAG] == "30.0"
    assert len({r.run_key for r in nightly}) == 3  # one run per shard per tick, never twice
    assert [r.tags[module.SHARD_TAG] for r in nightly] == shard_keys(3)

    # the sensor builds the marts once a shard loaded something new, once
    with dg.instance_for_test() as instance:
        sensor = module.marts_after_shards
        assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=module.RAW_KEYS[0],
                                                                    partition="shard_02_of_03"))
        result = sensor(dg.build_sensor_context(instance=instance))
        assert len(result.run_requests) == 1
        assert isinstance(sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor)), dg.SkipReason)


def test_make_dagster_writes_the_pool_limit_and_one_run_per_shard_into_dagster_yaml(tmp_path):
    import dagster as dg
    import yaml

    from orchestration.dev import dagster_yaml

    (tmp_path / "dagster.yaml").write_text(dagster_yaml(3))
    instance = dg.DagsterInstance.from_config(str(tmp_path))  # Dagster accepts it
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 3
    config = yaml.safe_load(dagster_yaml(3))
    assert config["concurrency"]["pools"]["default_limit"] == 3
    [limit] = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {"key": "instamojo/shard", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


@pytest.mark.slow
def test_dagster_definitions_validate_from_the_repository_root(tmp_path):
    env = {**os.environ, **_location_env(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate"], cwd=REPO, check=False,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_the_plain_sync_path_never_imports_dagster():
    code = ("import sys, pipelines.cli, pipelines.sync, pipelines.steps, orchestration.shards, orchestration.sync; "
            "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
