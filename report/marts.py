"""What the report reads: the reconciliation marts and the settlement calendar, nothing else
(never the raw tables, never the API), through a `transforms.warehouse.Warehouse` (a DB-API
connection to DuckDB or Postgres)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from transforms.warehouse import Warehouse

#: The tables the report reads, all in the marts schema (docs/marts.md).
TABLES = (
    "payments_reconciled",
    "payout_reconciliation",
    "order_reconciliation",
    "reconciliation_exceptions",
    "daily_settlement_summary",
    "settlement_calendar",
)

#: A timestamp's date in India, the same expression on DuckDB and Postgres (as the marts use).
IST_DATE = "CAST({column} AT TIME ZONE 'Asia/Kolkata' AS DATE)"


class ReportError(Exception):
    """A problem with the input or the warehouse that a person can fix; the message says what
    is wrong and what to do. The command line prints it and exits 2."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Marts:
    """Read-only access to the marts schema of one warehouse."""

    def __init__(self, warehouse: Warehouse, schema: str = "instamojo") -> None:
        self.warehouse = warehouse
        self.schema = schema
        self.source = ""  # where the marts are, for the page's header (set by the opener)
        self._prefix = _quote(schema)
        if warehouse.dialect == "duckdb":
            # DuckDB names the catalog after the file: `instamojo.x` is ambiguous in a file called
            # instamojo.duckdb, so every name is qualified with the catalog as well.
            catalog = warehouse.query("SELECT current_database()")[1][0][0]
            self._prefix = f"{_quote(catalog)}.{self._prefix}"

    def require(self) -> None:
        """Raise ReportError naming the marts that are missing."""
        missing = [t for t in TABLES if not self.warehouse.table_exists(self.schema, t)]
        if missing:
            what = "no marts" if len(missing) == len(TABLES) else "only some of the marts"
            raise ReportError(
                f"the warehouse has {what} in schema {self.schema!r} (missing: {', '.join(missing)}); "
                "build them with `make transform` (or `make sync`) first"
            )

    def table(self, name: str) -> str:
        if name not in TABLES:
            raise ValueError(f"the report reads only the marts, not {name!r}")
        return f"{self._prefix}.{_quote(name)}"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run `sql` ({t:name} placeholders are table names; ? is a parameter)."""
        sql = sql.replace("?", self.warehouse.placeholder) if self.warehouse.placeholder != "?" else sql
        return self.warehouse.query_dicts(sql, tuple(params))

    def in_list(self, values: Iterable[Any]) -> str:
        values = list(values)
        return "(" + ", ".join("?" for _ in values) + ")" if values else "(NULL)"

    # -- the queries ------------------------------------------------------------------------

    def merchants(self) -> list[str]:
        sql = " UNION ".join(
            f"SELECT DISTINCT merchant FROM {self.table(t)}"
            for t in ("payments_reconciled", "payout_reconciliation", "order_reconciliation",
                      "daily_settlement_summary", "reconciliation_exceptions")
        )
        return sorted(r["merchant"] for r in self.rows(sql) if r["merchant"] is not None)

    def freshness(self, merchants: list[str]) -> dict[str, dict[str, Any]]:
        """Per merchant: the as-of date the marts judged settlement at and its newest records."""
        m = self.in_list(merchants)
        out: dict[str, dict[str, Any]] = {name: {"merchant": name} for name in merchants}
        for table, columns in (
            ("payments_reconciled", "MAX(as_of_date) AS as_of_date, MAX(created_at) AS latest_payment_at"),
            ("payout_reconciliation", "MAX(paid_out_at) AS latest_payout_at"),
            ("order_reconciliation", "MAX(created_at) AS latest_order_at"),
            ("daily_settlement_summary", "MAX(summary_date) AS last_summary_date"),
        ):
            sql = f"SELECT merchant, {columns} FROM {self.table(table)} WHERE merchant IN {m} GROUP BY merchant"
            for row in self.rows(sql, merchants):
                out[row.pop("merchant")].update(row)
        return out

    def payments(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        """Payments made in the period, or due in a payout in it, or unsettled from before it."""
        sql = f"""
            SELECT merchant, payment_id, order_id, payout_id, payout_found, status, currency, amount,
                   fees, taxes, net_amount, created_at, payment_date, expected_payout_date,
                   overdue_after_date, paid_out_at, paid_out_date, settlement_state,
                   business_days_late, as_of_date
            FROM {self.table('payments_reconciled')}
            WHERE merchant IN {self.in_list(merchants)}
              AND (payment_date BETWEEN ? AND ?
                   OR expected_payout_date BETWEEN ? AND ?
                   OR (settlement_state IN ('awaiting_payout', 'overdue') AND payment_date < ?))
            ORDER BY merchant, created_at, payment_id
        """
        return self.rows(sql, [*merchants, start, end, start, end, start])

    def payouts(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        sql = f"""
            SELECT * FROM {self.table('payout_reconciliation')}
            WHERE merchant IN {self.in_list(merchants)} AND paid_out_date BETWEEN ? AND ?
            ORDER BY merchant, paid_out_at, payout_id
        """
        return self.rows(sql, [*merchants, start, end])

    def payout_payments(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        """Every payment linked to a payout of the period (Stripe's itemized payout view)."""
        sql = f"""
            SELECT po.merchant, po.payout_id, po.paid_out_date, p.payment_id, p.order_id, p.status,
                   p.amount, p.fees, p.taxes, p.net_amount, p.payment_date, p.expected_payout_date,
                   p.business_days_late
            FROM {self.table('payout_reconciliation')} AS po
            JOIN {self.table('payments_reconciled')} AS p
                ON p.merchant = po.merchant AND p.payout_id = po.payout_id
            WHERE po.merchant IN {self.in_list(merchants)} AND po.paid_out_date BETWEEN ? AND ?
            ORDER BY po.merchant, po.paid_out_at, po.payout_id, p.created_at, p.payment_id
        """
        return self.rows(sql, [*merchants, start, end])

    def daily(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        sql = f"""
            SELECT * FROM {self.table('daily_settlement_summary')}
            WHERE merchant IN {self.in_list(merchants)} AND summary_date BETWEEN ? AND ?
            ORDER BY merchant, summary_date
        """
        return self.rows(sql, [*merchants, start, end])

    def held_at(self, merchants: list[str], end: date) -> dict[str, dict[str, Any]]:
        """Each merchant's last daily summary row on or before `end` (money held at that day's end)."""
        t = self.table("daily_settlement_summary")
        sql = f"""
            SELECT d.merchant, d.summary_date, d.held_amount, d.awaiting_payout_amount
            FROM {t} AS d
            JOIN (SELECT merchant, MAX(summary_date) AS last_date FROM {t}
                  WHERE merchant IN {self.in_list(merchants)} AND summary_date <= ? GROUP BY merchant) AS l
                ON l.merchant = d.merchant AND l.last_date = d.summary_date
        """
        return {r["merchant"]: r for r in self.rows(sql, [*merchants, end])}

    def calendar(self, start: date, end: date) -> dict[date, dict[str, Any]]:
        sql = f"""
            SELECT calendar_date, is_business_day, holiday_name, business_day_number, expected_payout_date
            FROM {self.table('settlement_calendar')} WHERE calendar_date BETWEEN ? AND ?
        """
        return {r["calendar_date"]: r for r in self.rows(sql, [start, end])}

    def exceptions(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        """Exceptions whose entity's time falls in the period (and any without a time)."""
        occurred = IST_DATE.format(column="occurred_at")
        sql = f"""
            SELECT * FROM {self.table('reconciliation_exceptions')}
            WHERE merchant IN {self.in_list(merchants)}
              AND ({occurred} BETWEEN ? AND ? OR occurred_at IS NULL)
            ORDER BY merchant, exception_type, exception_id
        """
        return self.rows(sql, [*merchants, start, end])

    def orders(self, merchants: list[str], start: date, end: date) -> list[dict[str, Any]]:
        """Orders created in the period (every status: the report counts the paid ones too)."""
        created = IST_DATE.format(column="created_at")
        sql = f"""
            SELECT merchant, order_id, title, currency, created_at, order_amount, api_order_status,
                   payments_count, successful_payments_count, successful_amount, balance_due,
                   payments_status, status
            FROM {self.table('order_reconciliation')}
            WHERE merchant IN {self.in_list(merchants)} AND {created} BETWEEN ? AND ?
            ORDER BY merchant, created_at, order_id
        """
        return self.rows(sql, [*merchants, start, end])
