"""The Dagster code location (`[tool.dagster]` in pyproject.toml; `make dagster`; docs/orchestration.md).

- raw/<table>: one multi-asset over every raw table, partitioned by merchant shard; a partition's
  run is one run of the many-merchants engine over the shard's merchants, in the shard's own dlt
  pipeline (own state, folder and staging dataset). Failed merchants fail the run, named, after the
  healthy ones landed.
- <layer>/<model>: the dbt project's models as dbt assets downstream; dbt's tests as their checks.
- The great-expectations suites as asset checks: the raw suites run with the marts (blocking: an
  error fails the check and the marts do not build), the marts suites after them.
- Jobs `sync_shards` (partitioned) and `build_marts`; schedules hourly and nightly (30-day lookback);
  a sensor building the marts once the shard runs are done.
- Concurrency: the shards share the pool `instamojo_shards`; `[orchestration] max_parallel_shards`
  is its limit (`make dagster` writes it into dagster.yaml) and divides the app-wide rate limit.
  With DuckDB (one writer per file) shards run one at a time: the limit must be 1, and a shard also
  waits for the sync lock. With Postgres they run in parallel.
"""


import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from pipelines.config import ConfigError, Settings, load_settings
from sources.instamojo.schema import RAW_TABLES

from . import dbt as dbt_support
from .shards import POOL, OrchestrationSettings, shard_keys

SETTINGS = load_settings()
ORCHESTRATION = OrchestrationSettings.load(SETTINGS)
SHARDS = dg.StaticPartitionsDefinition(shard_keys(ORCHESTRATION.shards))
RAW_KEYS = [dg.AssetKey([dbt_support.RAW_PREFIX, table]) for table in RAW_TABLES]
LOOKBACK_TAG = "instamojo/lookback_days"
# one run per shard at a time (dagster.yaml: tag_concurrency_limits, applyLimitPerUniqueValue):
# a nightly deep run and an hourly one of the same shard queue instead of meeting at its lock
SHARD_TAG = "instamojo/shard"


class ShardConfig(dg.Config):
    """Run config of a shard's sync: `lookback_days` re-reads that many days behind every cursor
    (the nightly deep run: 30); none = the configured lookbacks."""

    lookback_days: float | None = None


# dagster-dlt's @dlt_assets runs `pipeline.run(source)` for one pipeline and source per asset
# definition. The engine's run is more than that (finishing an interrupted package first, taking
# a merchant's cursors from another shard's pipeline, per-merchant results, a lock per writer),
# so the shard asset is a plain multi-asset calling that engine (`orchestration.sync.run_shard`).
@dg.multi_asset(
    name="instamojo_raw",
    specs=[dg.AssetSpec(key, group_name="raw", kinds={"dlt", SETTINGS.destination},
                        description=f"Raw `{key.path[-1]}` rows of every merchant, loaded by dlt "
                                    "(docs/raw-tables.md)") for key in RAW_KEYS],
    partitions_def=SHARDS,
    pool=POOL,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
    op_tags={"instamojo/step": "sync"},
)
def instamojo_raw(context: dg.AssetExecutionContext, config: ShardConfig) -> Iterator[dg.MaterializeResult]:
    """Sync the merchants of this partition's shard into the raw tables."""
    from .sync import run_shard

    try:
        settings = load_settings()
        shard = run_shard(settings, OrchestrationSettings.load(settings), context.partition_key,
                          lookback_days=config.lookback_days)
    except ConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(f"{shard.key}: {len(shard.merchants)} merchant(s) in pipeline {shard.pipeline_name}: "
                     f"{', '.join(shard.merchants) or 'none'}")
    run = shard.run
    if run is not None and not run.load_ok:
        # nothing of this run landed; a retry loads the package a failed load left, or extracts again
        raise dg.Failure(description=f"{shard.key}: the load failed: {run.load_error}", allow_retries=True)
    rows: dict[str, int] = {}
    for result in run.results if run else []:
        for table, n in result.rows.items():
            rows[table] = rows.get(table, 0) + n
    for key in RAW_KEYS:
        yield dg.MaterializeResult(asset_key=key, metadata={
            "rows_loaded": dg.MetadataValue.int(rows.get(key.path[-1], 0)),
            "merchants": dg.MetadataValue.text(", ".join(shard.merchants)),
            "pipeline": dg.MetadataValue.text(shard.pipeline_name)})
    if shard.failed_merchants:
        failed = {r.merchant: r.error for r in (run.results if run else []) if not r.ok}
        # no retry: the merchants' cursors did not move, the next scheduled run retries them, and
        # a revoked token or a missing scope needs a person (`make authorize`)
        raise dg.Failure(
            description=f"{shard.key}: {len(failed)} of {len(shard.merchants)} merchant(s) failed: "
                        + "; ".join(f"{m}: {e}" for m, e in failed.items())
                        + ". The other merchants of the shard landed.",
            metadata={"failed_merchants": dg.MetadataValue.text(", ".join(failed))},
            allow_retries=False)


class Translator(DagsterDbtTranslator):
    """dbt's `instamojo` sources are the raw assets (raw/<table>); models are <layer>/<model>."""

    def get_asset_key(self, dbt_resource_props: Any) -> dg.AssetKey:
        return dg.AssetKey(dbt_support.asset_key_path(dbt_resource_props))

    def get_group_name(self, dbt_resource_props: Any) -> str | None:
        return "marts"


@dbt_assets(manifest=dbt_support.manifest_path(SETTINGS), dagster_dbt_translator=Translator(),
            op_tags={"instamojo/step": "marts"})
def instamojo_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Rebuild the marts of the merchants whose raw rows changed (all on the first build, or when
    the settings or the SQL changed) with `dbt build`: models, then their tests."""
    from pipelines.lock import SyncLock
    from pipelines.warehouse import publish, warehouse_target
    from transforms import ReconciliationSettings
    from transforms.dbt import finish_build, prepare_build

    settings = load_settings()
    target = warehouse_target(settings)
    work = dbt_support.work_dir(settings)
    with _duckdb_writer(settings, SyncLock):
        prepared = prepare_build(target, ReconciliationSettings.from_dlt_config())
        if prepared.skip:
            context.log.info("no merchant changed since the last build: nothing to rebuild")
            return
        context.log.info(f"rebuilding {'every merchant' if prepared.full_refresh else ', '.join(prepared.merchants or [])}")
        with dbt_support.profiles_dir(target) as profiles:
            # the resource with this run's generated profile (dagster-dbt also opens an adapter with it)
            run_dbt = DbtCliResource(project_dir=dbt.project_dir, dbt_executable=dbt.dbt_executable,
                                     profiles_dir=profiles)
            invocation = run_dbt.cli(["build", *prepared.args, "--log-path", str(work / "logs")],
                                     context=context, target_path=work / "target")
            yield from invocation.stream()
        finish_build(target, prepared)
        if publish(settings) is not None:
            context.log.info(f"published the analysts' copy {settings.duckdb_path}")


def _duckdb_writer(settings: Settings, lock_class: Any) -> Any:
    """DuckDB: the sync lock (one writer per file); Postgres: nothing to hold."""
    import contextlib

    from .sync import DUCKDB_LOCK_WAIT_SECONDS

    if settings.destination != "duckdb":
        return contextlib.nullcontext()
    return lock_class(settings.lock_path, wait=DUCKDB_LOCK_WAIT_SECONDS)


def _suite_checks(layer: str, keys: list[dg.AssetKey]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("great_expectations", asset=key, blocking=True,
                              description=f"the {layer} suite {layer}.{key.path[-1]} (docs/checks.md)") for key in keys]


MART_KEYS = [key for key in instamojo_marts.keys if key.path[0] == "marts"]


def _run_suites(layer: str, keys: list[dg.AssetKey], context: dg.AssetCheckExecutionContext
                ) -> Iterator[dg.AssetCheckResult]:
    """Run the great-expectations suites of `layer` on the warehouse (the working copy; every
    merchant) and yield one result per suite: failed error-severity expectations are ERROR."""
    from checks import CheckSettings, run_checks
    from pipelines.lock import SyncLock
    from pipelines.warehouse import open_warehouse

    settings = load_settings()
    with _duckdb_writer(settings, SyncLock), open_warehouse(settings) as warehouse:
        report = run_checks(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                            settings=CheckSettings.from_dlt_config(suites=(layer,)))
    by_table = {s.name.split(".", 1)[1]: s for s in report.suites}
    for key in keys:
        suite = by_table.get(key.path[-1])
        if suite is None:
            continue
        failures = [r.describe() for r in suite.failures]
        yield dg.AssetCheckResult(
            asset_key=key, check_name="great_expectations", passed=suite.status in ("passed", "skipped"),
            severity=dg.AssetCheckSeverity.ERROR if suite.status == "failed" else dg.AssetCheckSeverity.WARN,
            description="; ".join(failures) or suite.skip_reason or suite.status,
            metadata={"status": suite.status, "rows": suite.rows or 0,
                      "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures) or "none")})


@dg.multi_asset_check(specs=_suite_checks("raw", RAW_KEYS), name="raw_suites")
def raw_suites(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """The raw tables' suites, before the marts build (they block them)."""
    yield from _run_suites("raw", RAW_KEYS, context)


@dg.multi_asset_check(specs=_suite_checks("marts", MART_KEYS), name="marts_suites")
def marts_suites(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """The marts' suites, after dbt built them."""
    yield from _run_suites("marts", MART_KEYS, context)


sync_shards = dg.define_asset_job("sync_shards", selection=dg.AssetSelection.assets(instamojo_raw).without_checks())
build_marts = dg.define_asset_job("build_marts", selection=dg.AssetSelection.assets(instamojo_marts)
                                  | dg.AssetSelection.checks(raw_suites) | dg.AssetSelection.checks(marts_suites))


def _shard_runs(context: dg.ScheduleEvaluationContext, lookback_days: float | None) -> Iterator[dg.RunRequest]:
    tick = context.scheduled_execution_time.isoformat()
    config = dg.RunConfig(ops={"instamojo_raw": ShardConfig(lookback_days=lookback_days)})
    tags = {LOOKBACK_TAG: str(lookback_days)} if lookback_days is not None else {}
    for key in SHARDS.get_partition_keys():
        yield dg.RunRequest(run_key=f"{tick}:{key}", partition_key=key, run_config=config,
                            tags={**tags, SHARD_TAG: key})


# the README's cron lines: hourly at :15, the deep run at 02:45
@dg.schedule(job=sync_shards, cron_schedule="15 * * * *", execution_timezone="UTC")
def hourly_sync(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """Every hour: each shard syncs what changed (the configured lookbacks)."""
    yield from _shard_runs(context, None)


@dg.schedule(job=sync_shards, cron_schedule="45 2 * * *", execution_timezone="UTC")
def nightly_deep_sync(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """Every night: 30 days behind every cursor, for refunds and disputes that land weeks later."""
    yield from _shard_runs(context, 30.0)


@dg.sensor(job=build_marts, minimum_interval_seconds=60)
def marts_after_shards(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Build the marts once shards loaded new rows and no shard run is queued or running."""
    busy = context.instance.get_runs(dg.RunsFilter(job_name="sync_shards", statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED]), limit=1)
    if busy:
        return dg.SkipReason("shard runs still going")
    records = context.instance.fetch_materializations(RAW_KEYS[0], limit=1).records
    seen = int(context.cursor or 0)
    if not records or records[0].storage_id <= seen:
        return dg.SkipReason("no shard loaded anything since the last build")
    newest = records[0].storage_id
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=str(newest))], cursor=str(newest))


defs = dg.Definitions(
    assets=[instamojo_raw, instamojo_marts],
    asset_checks=[raw_suites, marts_suites],
    jobs=[sync_shards, build_marts],
    schedules=[hourly_sync, nightly_deep_sync],
    sensors=[marts_after_shards],
    resources={"dbt": DbtCliResource(project_dir=str(dbt_support.PROJECT_DIR),
                                     dbt_executable=str(Path(sys.executable).parent / "dbt"))},
)
