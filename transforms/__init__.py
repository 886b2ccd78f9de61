"""Reconciliation transforms: a dbt project (this folder: dbt_project.yml, models/, macros/,
tests/) over the raw dataset (`instamojo_raw`) that builds the marts analysts query
(`instamojo`): payments_reconciled, payout_reconciliation, order_reconciliation,
reconciliation_exceptions, daily_settlement_summary and settlement_calendar. See docs/marts.md.

The Python here does only what dbt cannot: run dbt in-process with a profile made from the
pipeline's configuration, write the settlement calendar (the `holidays` package) before the run,
say which merchants to rebuild, and summarise the run (`transforms.dbt`).

Entry points: `transforms.dbt.build(target, settings, changed_merchants=..., full_refresh=...)`,
`build_marts(warehouse, raw_schema=..., marts_schema=..., settings=...)`, and
`transforms.dbt.run_tests(target)` for the integrity tests.
"""

from transforms.build import build_marts
from transforms.dbt import BuildReport, DbtFailed, ModelRun
from transforms.settings import ReconciliationSettings
from transforms.warehouse import Warehouse, WarehouseTarget

__all__ = [
    "BuildReport",
    "DbtFailed",
    "ModelRun",
    "ReconciliationSettings",
    "Warehouse",
    "WarehouseTarget",
    "build_marts",
]
