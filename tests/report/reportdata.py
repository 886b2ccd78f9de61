"""Helpers for the report's tests: warehouses built by the real pipeline from a sandbox, the
report's command line as a real process, the page parsed back into its figures, and each figure's
SQL written out independently of the report's own code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from instamojo_sandbox import Sandbox, SandboxConfig
from pipelines.config import Settings
from tests.pipeline_helpers import POSTGRES_DSN, drop_postgres_schemas, sync_and_build_marts
from transforms.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]

#: every anomaly the sandbox can inject, spread over its two merchants so that no two touch the
#: same record; the last two are absorbed by the source and must raise nothing
ANOMALIES: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("orphan_payment", 0, {}),
    ("unbalanced_payout", 0, {"delta": "123.45"}),
    ("short_paid_order", 1, {}),
    ("non_numeric_amount", 1, {"endpoint": "payments"}),
    ("non_numeric_amount", 1, {"endpoint": "payouts"}),
    ("duplicate_across_pages", 0, {"endpoint": "payments", "page": 1}),
    ("unknown_field", 1, {"endpoint": "payments"}),
)


@dataclass
class Built:
    """A warehouse the pipeline built: its settings (where it is) and the anomalies' truth."""

    settings: Settings
    merchants: list[str]
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    as_of: date | None = None

    @property
    def schema(self) -> str:
        return self.settings.marts_dataset

    def open(self) -> Warehouse:
        """A read-only connection (DuckDB) or a plain one (Postgres); close it after use."""
        if self.settings.destination == "postgres":
            return Warehouse.postgres(self.settings.postgres_credentials)
        import duckdb

        return Warehouse(duckdb.connect(str(self.settings.duckdb_path), read_only=True), "duckdb")

    def env(self) -> dict[str, str]:
        """Environment for the report's command line to find this warehouse by configuration."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTAMOJO_ELT__", "DESTINATION__"))}
        env["INSTAMOJO_ELT__MARTS_DATASET"] = self.settings.marts_dataset
        if self.settings.destination == "postgres":
            env["INSTAMOJO_ELT__DESTINATION"] = "postgres"
            env["DESTINATION__POSTGRES__CREDENTIALS"] = POSTGRES_DSN
        else:
            env["INSTAMOJO_ELT__DUCKDB_PATH"] = str(self.settings.duckdb_path)
        return env

    def drop(self) -> None:
        drop_postgres_schemas(self.settings)


def build(tmp_path: Path, *, anomalies: bool = False, destination: str = "duckdb", seed: int = 1) -> Built:
    """Start a small sandbox, inject the anomalies, sync every merchant with the real pipeline and
    build the marts as of the sandbox's clock; the sandbox is stopped before returning."""
    with Sandbox(SandboxConfig(seed=seed, profile="small", page_size=50)) as sb:
        truth = []
        if anomalies:
            for kind, index, params in ANOMALIES:
                truth.append(sb.anomalies.inject(kind, sb.merchants[index], **params))
        settings, warehouse, _ = sync_and_build_marts(sb, tmp_path, destination)
        warehouse.close()
        from report.formatting import to_ist

        return Built(settings, list(sb.merchants), truth, to_ist(sb.now).date())


def run_report(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "report", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- the page, read back ------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    merchant: str
    value: str  # the exact value (data-value)
    text: str  # what a person reads


class PageParser(HTMLParser):
    """Collects every figure (data-total), section id, chart, row attribute and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: list[Figure] = []
        self.sections: list[str] = []
        self.charts: list[str] = []
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.links: list[str] = []
        self.sources: list[str] = []
        self.text_parts: list[str] = []
        self._open: list[Figure | None] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        if tag == "section" and "id" in a:
            self.sections.append(a["id"])
        if "data-chart" in a:
            self.charts.append(a["data-chart"])
        for name in ("data-payout", "data-exception", "data-order", "data-payment", "data-unbalanced",
                     "data-excluded", "data-nodata", "data-day", "data-order-status", "data-bucket"):
            if name in a:
                self.rows.setdefault(name[5:], []).append(a)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        for attr in ("src", "href"):
            if attr in a and tag != "a":
                self.sources.append(a[attr])
        if tag == "span":
            fig = Figure(a["data-total"], a["data-merchant"], a["data-value"], "") if "data-total" in a else None
            if fig:
                self.figures.append(fig)
            self._open.append(fig)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1
        if tag == "span" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text_parts.append(data)
        for fig in self._open:
            if fig is not None:
                fig.text += data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# -- each figure's SQL, written out independently -----------------------------------------------


AGE_BOUNDS = {
    "0–3 business days": (0, 3),
    "4–5 business days": (4, 5),
    "6–10 business days": (6, 10),
    "11–20 business days": (11, 20),
    "over 20 business days": (21, 100000),
}
FLOW_COLUMNS = {
    "flow_sales": ("sales_amount", 1), "flow_fees": ("fee_amount", -1), "flow_gst": ("total_tax_amount", -1),
    "flow_held": ("held_amount", -1), "flow_released": ("reversed_amount", 1),
    "flow_refunded": ("refunded_amount", -1), "flow_affiliate": ("affiliate_commission_amount", -1),
    "flow_partner": ("partner_commission_amount", -1), "flow_expected": ("expected_paid_amount", 1),
    "flow_residual": ("residual", 1), "flow_paid": ("paid_amount", 1), "flow_shipping": ("shipping_fee", 1),
}


class Truth:
    """The SQL each figure of the page stands for (docs/report.md), run on the warehouse."""

    def __init__(self, warehouse: Warehouse, schema: str, start: date, end: date) -> None:
        self.wh, self.start, self.end = warehouse, start, end
        catalog = ""
        if warehouse.dialect == "duckdb":
            catalog = '"' + warehouse.query("SELECT current_database()")[1][0][0] + '".'
        self.s = f'{catalog}"{schema}"'

    def one(self, sql: str, *params: Any) -> Any:
        ph = self.wh.placeholder
        return self.wh.query(sql.replace("?", ph), params)[1][0][0]

    def payments(self, merchant: str, what: str, where: str) -> Any:
        return self.one(f"SELECT {what} FROM {self.s}.payments_reconciled WHERE merchant = ? AND {where}",
                        merchant, self.start, self.end)

    def payouts(self, merchant: str, what: str, where: str = "TRUE") -> Any:
        return self.one(f"SELECT {what} FROM {self.s}.payout_reconciliation WHERE merchant = ? "
                        f"AND paid_out_date BETWEEN ? AND ? AND {where}", merchant, self.start, self.end)

    def value(self, key: str, merchant: str) -> Decimal | int:
        in_period = "payment_date BETWEEN ? AND ?"
        ok = "status = 'successful'"
        simple = {
            "sales": ("COALESCE(SUM(amount), 0)", f"{ok} AND {in_period}"),
            "fees": ("COALESCE(SUM(fees), 0)", f"{ok} AND {in_period}"),
            "gst": ("COALESCE(SUM(taxes), 0)", f"{ok} AND {in_period}"),
            "awaiting": ("COALESCE(SUM(net_amount), 0)", f"settlement_state = 'awaiting_payout' AND {in_period}"),
            "overdue": ("COALESCE(SUM(net_amount), 0)", f"settlement_state = 'overdue' AND {in_period}"),
            "unsettled_count": ("COUNT(*)", f"settlement_state IN ('awaiting_payout', 'overdue') AND {in_period}"),
            "unsettled_net": ("COALESCE(SUM(net_amount), 0)", f"settlement_state IN ('awaiting_payout', 'overdue') AND {in_period}"),
            "unsettled_gross": ("COALESCE(SUM(amount), 0)", f"settlement_state IN ('awaiting_payout', 'overdue') AND {in_period}"),
            "daily_expected": ("COALESCE(SUM(net_amount), 0)", f"{ok} AND expected_payout_date BETWEEN ? AND ?"),
        }
        if key in simple:
            return self.payments(merchant, *simple[key])
        if key in ("unsettled_before_count", "unsettled_before_net"):
            what = "COUNT(*)" if key.endswith("count") else "COALESCE(SUM(net_amount), 0)"
            return self.one(f"SELECT {what} FROM {self.s}.payments_reconciled WHERE merchant = ? AND "
                            "settlement_state IN ('awaiting_payout', 'overdue') AND payment_date < ?",
                            merchant, self.start)
        if key in ("paid_out", "payouts_paid"):
            return self.payouts(merchant, "COALESCE(SUM(paid_amount), 0)")
        if key == "refunds":
            return self.payouts(merchant, "COALESCE(SUM(refunded_amount), 0)")
        if key == "payouts_count":
            return self.payouts(merchant, "COUNT(*)")
        if key == "payouts_unbalanced":
            return self.payouts(merchant, "COUNT(*)", "status <> 'balanced'")
        if key == "payouts_residual":
            return self.payouts(merchant, "COALESCE(SUM(residual), 0)")
        if key in FLOW_COLUMNS:
            column, sign = FLOW_COLUMNS[key]
            total = self.payouts(merchant, f"COALESCE(SUM({column}), 0)",
                                 "expected_paid_amount IS NOT NULL AND paid_amount IS NOT NULL")
            return sign * total
        if key == "held":
            return self.one(
                f"SELECT COALESCE(MAX(held_amount), 0) FROM {self.s}.daily_settlement_summary WHERE merchant = ? "
                f"AND summary_date = (SELECT MAX(summary_date) FROM {self.s}.daily_settlement_summary "
                "WHERE merchant = ? AND summary_date <= ?)", merchant, merchant, self.end)
        if key == "daily_paid":
            return self.one(f"SELECT COALESCE(SUM(paid_out_amount), 0) FROM {self.s}.daily_settlement_summary "
                            "WHERE merchant = ? AND summary_date BETWEEN ? AND ?", merchant, self.start, self.end)
        exceptions_where = ("merchant = ? AND (CAST(occurred_at AT TIME ZONE 'Asia/Kolkata' AS DATE) BETWEEN ? AND ? "
                            "OR occurred_at IS NULL)")
        if key in ("exceptions_count", "exceptions_amount"):
            what = "COUNT(*)" if key.endswith("count") else "COALESCE(SUM(amount_at_stake), 0)"
            return self.one(f"SELECT {what} FROM {self.s}.reconciliation_exceptions WHERE {exceptions_where}",
                            merchant, self.start, self.end)
        family, _, detail = key.partition(":")
        if family in ("exc_count", "exc_amount"):
            what = "COUNT(*)" if family == "exc_count" else "COALESCE(SUM(amount_at_stake), 0)"
            return self.one(f"SELECT {what} FROM {self.s}.reconciliation_exceptions WHERE {exceptions_where} "
                            "AND exception_type = ?", merchant, self.start, self.end, detail)
        if family.startswith("orders_"):
            what = {"orders_count": "COUNT(*)", "orders_amount": "COALESCE(SUM(order_amount), 0)",
                    "orders_received": "COALESCE(SUM(successful_amount), 0)",
                    "orders_due": "COALESCE(SUM(balance_due), 0)"}[family]
            return self.one(f"SELECT {what} FROM {self.s}.order_reconciliation WHERE merchant = ? AND "
                            "CAST(created_at AT TIME ZONE 'Asia/Kolkata' AS DATE) BETWEEN ? AND ? AND status = ?",
                            merchant, self.start, self.end, detail)
        if family in ("aging_awaiting", "aging_overdue"):
            state = "awaiting_payout" if family == "aging_awaiting" else "overdue"
            low, high = AGE_BOUNDS[detail]
            return self.one(
                f"SELECT COALESCE(SUM(p.net_amount), 0) FROM {self.s}.payments_reconciled AS p "
                f"JOIN {self.s}.settlement_calendar AS made ON made.calendar_date = p.payment_date "
                f"JOIN {self.s}.settlement_calendar AS judged ON judged.calendar_date = p.as_of_date "
                "WHERE p.merchant = ? AND p.settlement_state = ? AND p.payment_date BETWEEN ? AND ? "
                "AND judged.business_day_number - made.business_day_number BETWEEN ? AND ?",
                merchant, state, self.start, self.end, low, high)
        raise AssertionError(f"the page shows a figure the tests do not know: {key!r} (add its SQL here "
                             "and to docs/report.md)")
