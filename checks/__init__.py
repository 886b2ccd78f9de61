"""Data-quality checks: great-expectations suites over the raw tables and the marts.

    from checks import run_checks, CheckSettings
    report = run_checks(warehouse, settings=CheckSettings(freshness_max_age=None))
    print(report.summary()); sys.exit(0 if report.ok else 1)

Importing this package is cheap: great-expectations (≈4 s to import) is loaded only inside
`run_checks`, so `python -m pipelines sync --help` and the source stay fast.
The suites and what each expectation guards: docs/checks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.report import CheckReport, ExpectationResult, SuiteResult
from checks.settings import CheckSettings

if TYPE_CHECKING:  # pragma: no cover
    from transforms.warehouse import Warehouse

__all__ = ["run_checks", "suite_names", "CheckSettings", "CheckReport", "SuiteResult", "ExpectationResult"]


def run_checks(
    warehouse: Warehouse,
    *,
    raw_schema: str = "instamojo_raw",
    marts_schema: str = "instamojo",
    settings: CheckSettings = CheckSettings(),
) -> CheckReport:
    """Run the suites on `warehouse` (DuckDB or Postgres) and return a `CheckReport`:
    `.ok` (no failing error-severity expectation and no expectation that raised),
    `.summary()` (compact text for the terminal), `.suites` (per-suite results) and
    `.docs_index` (the Data Docs index.html written under `settings.docs_dir`).

    Raises ValueError for an unknown suite name in `settings.suites`; every problem met while
    checking (a missing table, SQL that fails, an exception inside great-expectations) is a
    failing result in the report, never an exception and never a pass."""
    from checks.runner import run_checks as _run

    return _run(warehouse, raw_schema=raw_schema, marts_schema=marts_schema, settings=settings)


def suite_names() -> list[str]:
    """Names of every suite (`raw.payments`, …, `marts.payout_reconciliation`), for a CLI's
    `--suites` choices; the layers `raw` and `marts` are accepted too."""
    from checks.runner import all_suites

    return [s.name for s in all_suites()]
