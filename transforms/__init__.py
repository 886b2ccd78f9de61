"""Reconciliation transforms: SQL models over the raw dataset (`instamojo_raw`) that build the
marts analysts query (`instamojo`): payments_reconciled, payout_reconciliation,
order_reconciliation, reconciliation_exceptions, daily_settlement_summary (and the
settlement_calendar they use). See docs/marts.md.

Entry point: `build_marts(warehouse, raw_schema=..., marts_schema=..., settings=...)`.
"""

from transforms.build import BuildReport, ModelRun, build_marts
from transforms.integrity import run_integrity_checks
from transforms.settings import ReconciliationSettings
from transforms.warehouse import Warehouse

__all__ = [
    "BuildReport",
    "ModelRun",
    "ReconciliationSettings",
    "Warehouse",
    "build_marts",
    "run_integrity_checks",
]
