"""The itemized downloads: each table of the report as a CSV file beside the page. Money is an
exact decimal string ("1234.50"), never a float; times are ISO-8601 in IST (+05:30)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .formatting import plain, to_ist
from .model import Report

#: file name → (what it holds, its columns)
FILES: dict[str, tuple[str, list[str]]] = {
    "summary.csv": ("every total on the page, per merchant", ["merchant", "figure", "label", "value", "unknown"]),
    "payments.csv": ("payments made in the period, any status", [
        "merchant", "payment_id", "order_id", "status", "amount", "fees", "taxes", "net_amount", "created_at",
        "payment_date", "expected_payout_date", "settlement_state", "payout_id", "paid_out_date",
        "business_days_late"]),
    "payouts.csv": ("payouts paid out in the period, unbalanced first", [
        "merchant", "payout_id", "paid_out_at", "paid_out_date", "status", "paid_amount", "sales_amount",
        "fee_amount", "total_tax_amount", "held_amount", "reversed_amount", "refunded_amount",
        "affiliate_commission_amount", "partner_commission_amount", "shipping_fee", "expected_paid_amount",
        "residual", "linked_payments_count", "linked_unsuccessful_count", "linked_amount", "sales_difference"]),
    "payout_payments.csv": ("each payment in each of the period's payouts", [
        "merchant", "payout_id", "paid_out_date", "payment_id", "order_id", "status", "amount", "fees", "taxes",
        "net_amount", "payment_date", "expected_payout_date", "business_days_late"]),
    "daily_settlement.csv": ("per day: expected payouts (T+3) against paid out", [
        "merchant", "date", "is_business_day", "holiday_name", "expected_payments", "expected_net_amount",
        "payouts", "paid_out_amount", "difference"]),
    "unsettled.csv": ("successful payments awaiting payout or overdue, with their age", [
        "merchant", "payment_id", "order_id", "settlement_state", "made_in_period", "payment_date",
        "expected_payout_date", "overdue_after_date", "age_business_days", "age_bucket", "amount", "fees",
        "taxes", "net_amount"]),
    "exceptions.csv": ("every exception of the period", [
        "merchant", "exception_type", "severity", "exception_id", "entity_type", "entity_id", "related_id",
        "amount_at_stake", "occurred_at", "explanation"]),
    "orders.csv": ("orders of the period that are not simply paid", [
        "merchant", "order_id", "title", "status", "api_order_status", "created_at", "order_amount",
        "successful_payments_count", "successful_amount", "balance_due"]),
}


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, float):
        raise TypeError(f"a float reached a download: {value!r}")
    if isinstance(value, datetime):
        return to_ist(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def tables(report: Report) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in FILES}
    for m in report.merchants:
        figures = m.tiles + m.payout_figures + m.daily_figures + m.unsettled_figures
        figures += [_flow_figure(s) for s in m.flow.steps]
        for f in figures:
            out["summary.csv"].append({"merchant": m.merchant, "figure": f.key, "label": f.label,
                                       "value": f.value, "unknown": f.unknown})
        out["payments.csv"] += m.payments
        out["payouts.csv"] += m.payouts
        out["payout_payments.csv"] += m.payout_payments
        for d in m.days:
            out["daily_settlement.csv"].append({
                "merchant": m.merchant, "date": d.day, "is_business_day": d.is_business_day,
                "holiday_name": d.holiday_name, "expected_payments": d.expected_payments,
                "expected_net_amount": d.expected, "payouts": d.payouts, "paid_out_amount": d.paid,
                "difference": d.difference})
        out["unsettled.csv"] += [{**p, "made_in_period": True} for p in m.unsettled]
        out["unsettled.csv"] += [{**p, "made_in_period": False} for p in m.unsettled_before]
        out["exceptions.csv"] += [r for g in m.exception_groups for r in g.rows]
        out["orders.csv"] += [r for g in m.order_groups for r in g.rows]
    return out


def _flow_figure(step: Any) -> Any:
    from .model import Figure

    return Figure(step.key, step.label, step.value)


def write(report: Report, folder: Path) -> list[Path]:
    """Write every CSV into `folder`; returns their paths."""
    written = []
    for name, rows in tables(report).items():
        columns = FILES[name][1]
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for row in rows:
                w.writerow([cell(row.get(c)) for c in columns])
        written.append(path)
    return written


def read(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)
