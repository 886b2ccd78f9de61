"""The steps after loading, shared by `sync`, `transform`, `check` and `demo`: build the marts with
dbt, then judge the data. Each returns (ok, summary lines) and never raises for a failure of its own."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sources.instamojo.errors import redact

from .config import Settings

if TYPE_CHECKING:
    from transforms.dbt import ChangedMerchants


def dbt_work_dir(settings: Settings) -> Path:
    """Where dbt keeps its target/ (manifest, partial-parse cache) and logs between runs."""
    return settings.pipelines_dir.parent / "dbt"


def run_transform_step(settings: Settings, *, changed_merchants: ChangedMerchants | None = None,
                       full_refresh: bool = False, **overrides: Any) -> tuple[bool, list[str]]:
    """Build the marts with dbt in the configured warehouse; returns (ok, summary lines).

    `changed_merchants`: the merchants whose raw rows this run changed (or merchant -> the raw
    tables they changed in: `SyncRun.changed_tables`); only their rows are rebuilt, and only in
    the models that read a changed table. None (unknown): the merchants whose raw rows carry a
    `_synced_at` at or after the previous successful build's high-water mark. `full_refresh`: rebuild every
    merchant from scratch (also done on the first build and when settings or SQL changed).
    `overrides` replace `[transforms]` settings (e.g. the demo's `as_of`)."""
    from transforms import ReconciliationSettings
    from transforms.dbt import build

    from .warehouse import warehouse_target

    started = time.perf_counter()
    try:
        recon = dataclasses.replace(ReconciliationSettings.from_dlt_config(), **overrides)
        report = build(warehouse_target(settings), recon, changed_merchants=changed_merchants,
                       full_refresh=full_refresh, work_dir=dbt_work_dir(settings))
    except Exception as exc:  # noqa: BLE001  (a step reports its failure, never raises)
        return False, [(f"Transforms FAILED: {redact(f'{exc.__class__.__name__}: {exc}')} "
                        "(a mart whose model failed keeps its previous rows; the merchants stay listed "
                        "for the next run)")]
    lines = [f"Transforms: marts rebuilt in {settings.marts_dataset} ({time.perf_counter() - started:.1f} s)"]
    lines += ["  " + line for line in report.summary_lines()]
    return True, lines


def run_check_step(settings: Settings, *, freshness: bool = True, suites: Sequence[str] | None = None,
                   changed_merchants: Sequence[str] | None = None,
                   docs_dir: Path | None = None) -> tuple[bool, list[str]]:
    """Run the great-expectations suites and the dbt data tests (integrity: each must return
    zero rows); returns (ok, summary lines). `changed_merchants`: the suites judge only these
    merchants' rows (what a sync changed); None: every merchant (a full pass, `make check`)."""
    from checks import CheckSettings, run_checks
    from transforms import ReconciliationSettings
    from transforms.warehouse import Warehouse

    from .warehouse import published_snapshot

    # one payout tolerance: the marts' (a payout they call balanced passes its check)
    overrides: dict[str, Any] = {"payout_residual_tolerance": ReconciliationSettings.from_dlt_config().payout_tolerance}
    if not freshness:
        overrides["freshness_max_age"] = None
    if suites:
        overrides["suites"] = tuple(suites)
    if changed_merchants is not None:
        overrides["merchants"] = tuple(changed_merchants)
    if docs_dir is not None:  # the demo keeps its Data Docs beside its own files
        overrides["docs_dir"] = docs_dir
    try:
        check_settings = CheckSettings.from_dlt_config(**overrides)
        # what analysts see (for DuckDB a private snapshot of the published copy, so neither a
        # sync nor an analyst's open connection is in the way); dbt opens it too, for its tests
        with published_snapshot(settings) as target:
            warehouse = (Warehouse.duckdb(str(target.duckdb_path)) if target.dialect == "duckdb"
                         else Warehouse.postgres(target.require_postgres_dsn()))
            try:
                report = run_checks(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                                    settings=check_settings)
                marts_built = warehouse.table_exists(settings.marts_dataset, "payments_reconciled")
            finally:
                warehouse.close()
            integrity_ok, integrity_lines = _integrity(settings, target) if marts_built else (True, [])
    except Exception as exc:  # noqa: BLE001  (a step reports its failure, never raises)
        return False, [f"Checks FAILED to run: {redact(f'{exc.__class__.__name__}: {exc}')}"]
    return report.ok and integrity_ok, report.summary().splitlines() + integrity_lines


def _integrity(settings: Settings, target) -> tuple[bool, list[str]]:
    """The dbt project's data tests (transforms/tests and each mart's one-row-per-key): no
    payment in two payouts, marts' totals equal raw totals, every exception names a known entity."""
    from transforms import ReconciliationSettings
    from transforms.dbt import run_tests

    results = run_tests(target, ReconciliationSettings.from_dlt_config(), work_dir=dbt_work_dir(settings))
    failed = [r for r in results if not r.ok]
    if failed:
        return False, ["integrity tests (dbt): FAILED"] + [
            f"  integrity FAILED  {r.name}: {r.status}, {r.failures} offending row(s)"
            + (f" ({r.message})" if r.status == "error" else "") for r in failed
        ]
    return True, [f"integrity tests (dbt): all {len(results)} hold (each must return zero rows)"]
