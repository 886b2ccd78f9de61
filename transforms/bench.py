"""Benchmark: how long `build_marts` takes over N synthetic payments in DuckDB.

The raw tables are generated inside DuckDB (generate_series), not through the API, so generating a
million payments takes a couple of seconds and the figure measured is the rebuild alone. The data
is consistent the way a clean sandbox is: fees 2% + ₹3 with 18% GST (rounded to the paisa),
successful payments paid out on their expected payout date in one payout per merchant and day,
each order paid by its two nested payments; a rebuild over it yields no exceptions.

    python -m transforms.bench 1000000        # prints a JSON report
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sources.instamojo.schema import RAW_TABLES
from transforms.build import build_marts
from transforms.calendar import settlement_calendar
from transforms.settings import ReconciliationSettings
from transforms.warehouse import Warehouse

MERCHANTS = 4
FIRST_DAY = date(2024, 1, 1)
SPAN_DAYS = 365


def generate_raw(warehouse: Warehouse, n_payments: int, *, raw_schema: str = "instamojo_raw",
                 settings: ReconciliationSettings = ReconciliationSettings()) -> dict[str, int]:
    """Fill `raw_schema` (DuckDB) with `n_payments` payments and matching payouts and orders."""
    if warehouse.dialect != "duckdb":
        raise ValueError("the benchmark generates its data with DuckDB's generate_series: pass a DuckDB warehouse")
    if n_payments < 1:
        raise ValueError(f"n_payments must be positive, got {n_payments}")
    w = warehouse
    w.execute(f"CREATE SCHEMA IF NOT EXISTS {raw_schema}")
    for table in ("payments", "payouts", "orders", "order_payments"):
        w.execute(f"DROP TABLE IF EXISTS {raw_schema}.{table}")
        w.execute(RAW_TABLES[table].create_table_sql(raw_schema))

    # expected payout date of every payment day, from the same calendar the transforms use
    days = settlement_calendar(FIRST_DAY - timedelta(days=1), FIRST_DAY + timedelta(days=SPAN_DAYS), settings)
    w.execute("CREATE TEMPORARY TABLE bench_calendar (d DATE, expected DATE)")
    w.execute(
        "INSERT INTO bench_calendar VALUES "
        + ", ".join(f"(DATE '{d.calendar_date}', DATE '{d.expected_payout_date}')" for d in days)
    )
    # "now" for the data: the last day; payments due after it are still awaiting payout
    as_of = datetime.combine(FIRST_DAY + timedelta(days=SPAN_DAYS), datetime.min.time(), timezone.utc)
    seconds_per_payment = SPAN_DAYS * 86400 / n_payments

    w.execute(
        f"""
        CREATE TEMPORARY TABLE bench_payments AS
        WITH base AS (
            SELECT
                i,
                'bench_m' || CAST((i // 2) % {MERCHANTS} AS VARCHAR) AS merchant,
                'MOJO' || LPAD(CAST(i AS VARCHAR), 12, '0') AS id,
                CASE WHEN i % 100 < 90 THEN TRUE WHEN i % 100 < 97 THEN FALSE ELSE NULL END AS status,
                -- ₹10.00 to ₹99,999.99, spread deterministically
                CAST(CAST(1000 + (i * 7919) % 9999000 AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2)) AS amount,
                TIMESTAMPTZ '{FIRST_DAY.isoformat()} 00:00:00+00'
                    + to_microseconds(CAST(i * {seconds_per_payment * 1_000_000:.0f} AS BIGINT)) AS created_at
            FROM generate_series(0, {n_payments - 1}) AS t(i)
        ),
        priced AS (
            SELECT *,
                -- Instamojo: 2% + ₹3 per payment, 18% GST on the fee, rounded to the paisa
                CASE WHEN status IS TRUE THEN CAST(ROUND(amount * CAST(0.02 AS DECIMAL(3,2)) + 3, 2) AS DECIMAL(18,2))
                     ELSE CAST(0 AS DECIMAL(18,2)) END AS fees
            FROM base
        )
        SELECT
            p.*,
            CAST(ROUND(p.fees * CAST(0.18 AS DECIMAL(3,2)), 2) AS DECIMAL(18,2)) AS taxes,
            c.expected,
            CASE WHEN p.status IS TRUE AND c.expected < DATE '{as_of.date()}'
                 THEN p.merchant || '-PO-' || CAST(c.expected AS VARCHAR) END AS payout_id
        FROM priced AS p
        JOIN bench_calendar AS c ON c.d = CAST(p.created_at AT TIME ZONE 'Asia/Kolkata' AS DATE)
        """
    )
    w.execute(
        f"""
        INSERT INTO {raw_schema}.payments
            (merchant, id, status, currency, amount, fees, total_taxes, payout_id, created_at, updated_at, _synced_at)
        SELECT merchant, id, status, 'INR', amount, fees, taxes, payout_id, created_at, created_at,
               TIMESTAMPTZ '{as_of.isoformat()}'
        FROM bench_payments
        """
    )
    w.execute(
        f"""
        INSERT INTO {raw_schema}.payouts
            (merchant, id, status, paid_out_at, currency, paid_amount, sales_amount, fee_amount, total_tax_amount,
             held_amount, reversed_amount, refunded_amount, affiliate_commission_amount,
             partner_commission_amount, shipping_fee, payout_type, _synced_at)
        SELECT merchant, payout_id, TRUE,
               -- noon in Asia/Kolkata on the expected date
               CAST(CAST(MIN(expected) AS VARCHAR) || ' 06:30:00+00' AS TIMESTAMPTZ),
               'INR',
               SUM(amount) - SUM(fees) - SUM(taxes), SUM(amount), SUM(fees), SUM(taxes),
               0, 0, 0, 0, 0, 0, 0, TIMESTAMPTZ '{as_of.isoformat()}'
        FROM bench_payments
        WHERE payout_id IS NOT NULL
        GROUP BY merchant, payout_id
        """
    )
    # order k holds payments 2k and 2k+1 (same merchant); its status follows its payments
    w.execute(
        f"""
        INSERT INTO {raw_schema}.order_payments (merchant, order_id, payment_id, amount, status, _synced_at)
        SELECT merchant, 'order-' || CAST(i // 2 AS VARCHAR), id, amount,
               CASE WHEN status IS TRUE THEN 'Success' WHEN status IS FALSE THEN 'Failed' ELSE 'Pending' END,
               TIMESTAMPTZ '{as_of.isoformat()}'
        FROM bench_payments
        """
    )
    w.execute(
        f"""
        INSERT INTO {raw_schema}.orders (merchant, id, title, currency, created_at, amount, order_status, _synced_at)
        SELECT merchant, 'order-' || CAST(i // 2 AS VARCHAR), 'bench order', 'INR', MIN(created_at), SUM(amount),
               CASE WHEN COUNT(*) FILTER (WHERE status IS TRUE) = COUNT(*) THEN 'Fully Paid'
                    WHEN COUNT(*) FILTER (WHERE status IS TRUE) > 0 THEN 'Partially Paid'
                    ELSE 'Pending' END,
               TIMESTAMPTZ '{as_of.isoformat()}'
        FROM bench_payments
        GROUP BY merchant, i // 2
        """
    )
    w.execute("DROP TABLE bench_payments")
    w.execute("DROP TABLE bench_calendar")
    counts = {}
    for table in ("payments", "payouts", "orders", "order_payments"):
        _, rows = w.query(f"SELECT COUNT(*) FROM {raw_schema}.{table}")
        counts[table] = int(rows[0][0])
    return counts


def rebuild_seconds(n_payments: int, *, path: str | Path | None = None) -> dict[str, Any]:
    """Generate `n_payments` synthetic payments in a DuckDB file and time `build_marts` over them.

    Returns a dict: n_payments, raw row counts, generate_seconds, build_seconds (the figure that
    matters), per-model seconds, mart rows and the exceptions found (0 on this clean data).
    The DuckDB file is a temporary one unless `path` is given.
    """
    with tempfile.TemporaryDirectory(prefix="transforms-bench-") as tmp:
        db_path = Path(path) if path else Path(tmp) / "bench.duckdb"
        warehouse = Warehouse.duckdb(str(db_path))
        try:
            started = time.perf_counter()
            counts = generate_raw(warehouse, n_payments)
            generate_seconds = time.perf_counter() - started
            report = build_marts(warehouse)
        finally:
            warehouse.close()
    return {
        "n_payments": n_payments,
        "raw_rows": counts,
        "generate_seconds": round(generate_seconds, 3),
        "build_seconds": round(report.seconds, 3),
        "publish_seconds": round(report.publish_seconds, 3),
        "model_seconds": {m.name: round(m.seconds, 3) for m in report.models},
        "mart_rows": report.mart_rows,
        "exceptions": report.exceptions_by_type,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a rebuild of the reconciliation marts over synthetic data (DuckDB).")
    parser.add_argument("n_payments", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--path", help="keep the DuckDB file here instead of a temporary one")
    args = parser.parse_args(argv)
    result = rebuild_seconds(args.n_payments, path=args.path)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
