"""The steps after loading, shared by `sync`, `transform`, `check` and `demo`: rebuild the marts,
then judge the data. Each returns (ok, summary lines) and never raises for a failure of its own."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

from sources.instamojo.errors import redact

from .config import Settings


def run_transform_step(settings: Settings, **overrides: Any) -> tuple[bool, list[str]]:
    """Rebuild the marts through the destination connection; returns (ok, summary lines).
    `overrides` replace `[transforms]` settings (e.g. the demo's `as_of`)."""
    from transforms import ReconciliationSettings, build_marts

    from .warehouse import open_warehouse

    started = time.perf_counter()
    try:
        recon = dataclasses.replace(ReconciliationSettings.from_dlt_config(), **overrides)
        with open_warehouse(settings) as warehouse:
            report = build_marts(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                                 settings=recon)
    except Exception as exc:
        return False, [f"Transforms FAILED: {redact(f'{exc.__class__.__name__}: {exc}')} (the marts keep their previous contents)"]
    lines = [f"Transforms: marts rebuilt in {settings.marts_dataset} ({time.perf_counter() - started:.1f} s)"]
    lines += ["  " + line for line in report.summary().splitlines()] if hasattr(report, "summary") else []
    return True, lines


def run_check_step(settings: Settings, *, freshness: bool = True, suites: Sequence[str] | None = None) -> tuple[bool, list[str]]:
    """Run the data-quality suites; returns (ok, summary lines)."""
    from checks import CheckSettings, run_checks

    from .warehouse import open_warehouse

    overrides: dict[str, Any] = {}
    if not freshness:
        overrides["freshness_max_age"] = None
    if suites:
        overrides["suites"] = tuple(suites)
    try:
        check_settings = CheckSettings.from_dlt_config(**overrides)
        # what analysts see: for DuckDB the published copy (read-only), never the working file
        with open_warehouse(settings, published=True) as warehouse:
            report = run_checks(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                                settings=check_settings)
            integrity_ok, integrity_lines = _integrity(warehouse, settings)
    except Exception as exc:
        return False, [f"Checks FAILED to run: {redact(f'{exc.__class__.__name__}: {exc}')}"]
    return report.ok and integrity_ok, report.summary().splitlines() + integrity_lines


def _integrity(warehouse: Any, settings: Settings) -> tuple[bool, list[str]]:
    """The transforms' integrity queries (each must return zero rows: no payment in two payouts,
    marts' totals equal raw totals, one row per key …), when the marts exist."""
    from transforms import run_integrity_checks

    if not warehouse.table_exists(settings.marts_dataset, "payments_reconciled"):
        return True, []  # no marts yet: the suites already say so
    results = run_integrity_checks(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset)
    lines = [f"  integrity FAILED  {name}: {len(rows)} offending row(s), e.g. {rows[:2]}"
             for name, rows in results.items() if rows]
    if lines:
        return False, ["integrity queries: FAILED"] + lines
    return True, [f"integrity queries: all {len(results)} hold (each must return zero rows)"]


