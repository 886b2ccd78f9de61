"""Benchmark: how long the dbt build of the marts takes over synthetic payments in DuckDB.

The raw tables are generated inside DuckDB (generate_series), not through the API, so generating
millions of payments takes seconds and the figures measured are the builds alone. The data is
consistent the way a clean sandbox is: fees 2% + ₹3 with 18% GST (rounded to the paisa), successful
payments paid out on their expected payout date in one payout per merchant and day, each order
paid by its two nested payments; a build over it yields no exceptions.

Two comparisons, each as the median of interleaved runs (A B A B …; this machine is shared and
noisy), every run in a fresh Python process on its own copy of the same generated file:

- a full build over 1,000,000 payments (4 merchants, + 500,000 orders and 1,000,000 nested
  payments): dbt against the runner this project used before dbt (`transforms/build.py` of the
  last commit that had it, extracted with `git archive` into a temporary folder);
- over 10,000,000 payments of 1,000 merchants: a full dbt build against incremental ones after
  1% of the merchants (10) got new raw rows: a new payment each (all that most syncs bring; the
  sync reports that only the payments table changed, so the order models are left alone), and,
  for 10 other merchants, new rows in every raw table the marts read.

    python -m transforms.bench                 # both, prints lines and a JSON report
    python -m transforms.bench --runs 1 --payments 100000 --incremental-payments 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sources.instamojo.schema import RAW_TABLES
from transforms.calendar import settlement_calendar
from transforms.settings import DEFAULT_SETTINGS, ReconciliationSettings
from transforms.warehouse import Warehouse

if TYPE_CHECKING:
    from transforms.dbt import ChangedMerchants

REPO = Path(__file__).resolve().parents[1]
MERCHANTS = 4
FIRST_DAY = date(2024, 1, 1)
SPAN_DAYS = 365


def generate_raw(warehouse: Warehouse, n_payments: int, *, raw_schema: str = "instamojo_raw", merchants: int = MERCHANTS,
                 settings: ReconciliationSettings = DEFAULT_SETTINGS) -> dict[str, int]:
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
    as_of = datetime.combine(FIRST_DAY + timedelta(days=SPAN_DAYS), datetime.min.time(), UTC)
    seconds_per_payment = SPAN_DAYS * 86400 / n_payments

    w.execute(
        f"""
        CREATE TEMPORARY TABLE bench_payments AS
        WITH base AS (
            SELECT
                i,
                'bench_m' || CAST((i // 2) % {merchants} AS VARCHAR) AS merchant,
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


# -- one timed build, in a process of its own -------------------------------------------------------


def _time_dbt(db: Path, work: Path, mode: str, merchants: ChangedMerchants) -> dict[str, Any]:
    from transforms.dbt import build

    target = Warehouse.duckdb(str(db))
    try:
        tgt = target.target("instamojo_raw", "instamojo")
    finally:
        target.close()
    started = time.perf_counter()
    report = build(tgt, full_refresh=mode == "full", changed_merchants=merchants if mode == "incremental" else None,
                   work_dir=work)
    return {"seconds": time.perf_counter() - started, "dbt_seconds": report.dbt_seconds,
            "full_refresh": report.full_refresh, "rebuilt": len(report.rebuilt_merchants or ()),
            "exceptions": report.exceptions_total,
            "models": {m.name: round(m.seconds, 3) for m in report.models}}


def _child(argv: list[str]) -> int:
    db, work, mode = argv[:3]
    merchants = json.loads(argv[3]) if len(argv) > 3 else []  # a list, or merchant -> raw tables
    print(json.dumps(_time_dbt(Path(db), Path(work), mode, merchants)))
    return 0


def _run_child(kind: str, db: Path, work: Path, mode: str = "full", merchants: ChangedMerchants | None = None,
               pythonpath: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath or REPO)
    # the old runner: its own code first on the path, timed around its build_marts alone
    code = ("import sys; from transforms.bench import _child; raise SystemExit(_child(sys.argv[1:]))"
            if kind == "dbt" else
            "import sys, json, time; sys.path.insert(0, sys.argv[-1]); "
            "from transforms.build import build_marts; from transforms.warehouse import Warehouse; "
            "w = Warehouse.duckdb(sys.argv[1]); t = time.perf_counter(); r = build_marts(w); "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'exceptions': r.exceptions_total}))")
    args = [str(db), str(work), mode, json.dumps(merchants or [])]
    if kind == "old":
        args = [str(db), str(pythonpath)]
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=str(pythonpath or REPO),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} build failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def old_runner_commit() -> str:
    """The last commit with the runner dbt replaced (transforms/templating.py)."""
    deleted = subprocess.run(["git", "rev-list", "-1", "HEAD", "--", "transforms/templating.py"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
    return f"{deleted}^"


def _extract_old_runner(into: Path) -> Path:
    commit = old_runner_commit()
    archive = subprocess.run(["git", "archive", commit, "transforms", "sources"], cwd=REPO, capture_output=True,
                             check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def compare_full(n_payments: int, runs: int, tmp: Path, say) -> dict[str, Any]:
    """dbt against the old runner: full builds over the same generated file, interleaved."""
    source = tmp / "full-source.duckdb"
    w = Warehouse.duckdb(str(source))
    try:
        counts = generate_raw(w, n_payments)
    finally:
        w.close()
    old_code = _extract_old_runner(tmp / "old-runner")
    work = tmp / "dbt-work-full"
    # one untimed dbt build first: parses the project into the work dir, as a pipeline's
    # earlier runs have (partial parsing); every timed run is still a full refresh
    _run_child("dbt", _copy(source, tmp / "warm.duckdb"), work, "full")
    old_s, dbt_s = [], []
    for i in range(runs):
        # the same file name every time: dbt's partial parse keys on the connection, as a
        # pipeline's runs against its one warehouse file do
        old = _run_child("old", _copy(source, tmp / "old.duckdb"), work, pythonpath=old_code)
        new = _run_child("dbt", _copy(source, tmp / "warm.duckdb"), work, "full")
        old_s.append(old["seconds"])
        dbt_s.append(new["seconds"])
        say(f"  run {i + 1}: previous runner {old['seconds']:.1f} s, dbt {new['seconds']:.1f} s "
            f"(dbt itself {new['dbt_seconds']:.1f} s)")
    return {"n_payments": n_payments, "raw_rows": counts, "old_runner_commit": old_runner_commit(),
            "old_seconds": old_s, "dbt_seconds": dbt_s,
            "old_median": statistics.median(old_s), "dbt_median": statistics.median(dbt_s),
            "exceptions": new["exceptions"], "model_seconds": new["models"]}


# A new payment, synced now; with `every_table`, also the order that lists it and the payout that
# paid it (what a sync of a merchant with a store brings): the merchant's rows then change in
# every raw table the marts read.
_NEW_ROWS = {
    "payments": ("INSERT INTO instamojo_raw.payments (merchant, id, status, currency, amount, fees, total_taxes, "
                 "payout_id, created_at, updated_at, _synced_at) VALUES (?, ?, TRUE, 'INR', 1000.00, 23.00, 4.14, ?, "
                 "TIMESTAMPTZ '2024-12-30 10:00:00+00', TIMESTAMPTZ '2024-12-30 10:00:00+00', "
                 "TIMESTAMPTZ '2024-12-31 00:00:00+00')"),
    "payouts": ("INSERT INTO instamojo_raw.payouts (merchant, id, status, paid_out_at, currency, paid_amount, "
                "sales_amount, fee_amount, total_tax_amount, held_amount, reversed_amount, refunded_amount, "
                "affiliate_commission_amount, partner_commission_amount, shipping_fee, payout_type, _synced_at) "
                "VALUES (?, ?, TRUE, TIMESTAMPTZ '2024-12-31 06:30:00+00', 'INR', 972.86, 1000.00, 23.00, 4.14, "
                "0, 0, 0, 0, 0, 0, 0, TIMESTAMPTZ '2024-12-31 00:00:00+00')"),
    "orders": ("INSERT INTO instamojo_raw.orders (merchant, id, title, currency, created_at, amount, order_status, "
               "_synced_at) VALUES (?, ?, 'bench order', 'INR', TIMESTAMPTZ '2024-12-30 10:00:00+00', 1000.00, "
               "'Fully Paid', TIMESTAMPTZ '2024-12-31 00:00:00+00')"),
    "order_payments": ("INSERT INTO instamojo_raw.order_payments (merchant, order_id, payment_id, amount, status, "
                       "_synced_at) VALUES (?, ?, ?, 1000.00, 'Success', TIMESTAMPTZ '2024-12-31 00:00:00+00')"),
}


def add_new_rows(db: Path, merchants: list[str], tag: str, *, every_table: bool) -> dict[str, list[str]]:
    """Give each merchant new raw rows (see _NEW_ROWS); returns merchant -> the raw tables written,
    as a sync reports them (`SyncRun.changed_tables`)."""
    w = Warehouse.duckdb(str(db))
    try:
        for m in merchants:
            payment, payout, order = f"BENCH-{tag}-{m}", f"BENCH-PO-{tag}-{m}", f"BENCH-ORDER-{tag}-{m}"
            w.execute(_NEW_ROWS["payments"], (m, payment, payout if every_table else None))
            if every_table:
                w.execute(_NEW_ROWS["payouts"], (m, payout))
                w.execute(_NEW_ROWS["orders"], (m, order))
                w.execute(_NEW_ROWS["order_payments"], (m, order, payment))
    finally:
        w.close()
    tables = sorted(_NEW_ROWS) if every_table else ["payments"]
    return {m: tables for m in merchants}


def compare_incremental(n_payments: int, n_merchants: int, runs: int, tmp: Path, say) -> dict[str, Any]:
    """A full dbt build against incremental ones after 1% of the merchants changed: with a new
    payment each (what most syncs bring), and with new rows in every raw table each."""
    db = tmp / "incremental.duckdb"
    w = Warehouse.duckdb(str(db))
    try:
        counts = generate_raw(w, n_payments, merchants=n_merchants)
    finally:
        w.close()
    work = tmp / "dbt-work-incremental"
    changed_count = max(1, n_merchants // 100)
    full_s, incr_s, every_s = [], [], []
    _run_child("dbt", db, work, "full")  # the marts exist before the first timed pair
    for i in range(runs):
        full = _run_child("dbt", db, work, "full")
        changed = [f"bench_m{(i * 37 + k * 97) % n_merchants}" for k in range(changed_count)]
        incr = _run_child("dbt", db, work, "incremental", add_new_rows(db, changed, str(i), every_table=False))
        assert incr["rebuilt"] == len(changed) and not incr["full_refresh"], incr
        other = [f"bench_m{(i * 37 + k * 97 + 1) % n_merchants}" for k in range(changed_count)]
        every = _run_child("dbt", db, work, "incremental", add_new_rows(db, other, f"all-{i}", every_table=True))
        assert every["rebuilt"] == len(other) and not every["full_refresh"], every
        full_s.append(full["seconds"])
        incr_s.append(incr["seconds"])
        every_s.append(every["seconds"])
        say(f"  run {i + 1}: full {full['seconds']:.1f} s, incremental ({len(changed)} merchants): new payments "
            f"{incr['seconds']:.1f} s, new rows in every table {every['seconds']:.1f} s")
    return {"n_payments": n_payments, "merchants": n_merchants, "changed_merchants": changed_count,
            "raw_rows": counts, "full_seconds": full_s, "incremental_seconds": incr_s,
            "every_table_seconds": every_s,
            "full_median": statistics.median(full_s), "incremental_median": statistics.median(incr_s),
            "every_table_median": statistics.median(every_s),
            "incremental_model_seconds": incr["models"], "every_table_model_seconds": every["models"]}


def compare(tmp: Path, say, *, payments: int = 1_000_000, runs: int = 3, incremental_payments: int = 10_000_000,
            merchants: int = 1_000, incremental_runs: int = 3, full: bool = True,
            incremental: bool = True) -> dict[str, Any]:
    """Both comparisons (`make bench` runs them too), each ending with a line of medians; returns
    their figures under "full" and "incremental"."""
    result: dict[str, Any] = {}
    if full:
        say(f"full build over {payments:,} payments: previous runner vs dbt ({runs} interleaved pairs)")
        f = result["full"] = compare_full(payments, runs, tmp, say)
        say(f"full build, median: previous runner {f['old_median']:.1f} s, dbt {f['dbt_median']:.1f} s")
    if incremental:
        say(f"over {incremental_payments:,} payments of {merchants:,} merchants: full vs incremental after 1% of "
            f"the merchants changed ({incremental_runs} interleaved rounds)")
        i = result["incremental"] = compare_incremental(incremental_payments, merchants, incremental_runs, tmp, say)
        say(f"median: full {i['full_median']:.1f} s; incremental, new payments {i['incremental_median']:.1f} s = "
            f"{100 * i['incremental_median'] / i['full_median']:.1f}%, new rows in every table "
            f"{i['every_table_median']:.1f} s = {100 * i['every_table_median'] / i['full_median']:.1f}% of the full "
            "build (aim ≤ 10%)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time dbt builds of the reconciliation marts over synthetic data (DuckDB).")
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments of the full-build comparison")
    parser.add_argument("--incremental-payments", type=int, default=10_000_000)
    parser.add_argument("--merchants", type=int, default=1_000, help="merchants of the incremental comparison")
    parser.add_argument("--runs", type=int, default=3, help="interleaved pairs of the full-build comparison (medians)")
    parser.add_argument("--incremental-runs", type=int, default=3, help="interleaved rounds of the incremental one")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--output", help="also write the JSON report here")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="transforms-bench-") as tmp:
        result = compare(Path(tmp), say, payments=args.payments, runs=args.runs,
                         incremental_payments=args.incremental_payments, merchants=args.merchants,
                         incremental_runs=args.incremental_runs, full=not args.skip_full,
                         incremental=not args.skip_incremental)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
