"""`query`: run one SQL statement against the warehouse and print the result as a table, so an
analyst needs no other client to look at what a sync built."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from .config import Settings


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal):
        return f"{value:,.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    return str(value)


def format_table(columns: list[str], rows: list[tuple], limit: int = 50) -> str:
    """A plain-text table; numbers right-aligned; at most `limit` rows shown."""
    shown = [[_cell(v) for v in row] for row in rows[:limit]]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows[:limit])
               for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in shown)]
    if len(rows) > limit:
        out.append(f"… {len(rows) - limit} more rows")
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def run_query(settings: Settings, sql: str, limit: int = 50) -> str:
    """Run `sql` on what analysts see, read-only, and format the result: for DuckDB the published
    copy, through a connection that reads that file and nothing else (no other file can be read
    or written from SQL); for Postgres a read-only transaction."""
    from transforms.warehouse import Warehouse

    from .warehouse import analyst_connection, postgres_dsn

    if settings.destination == "postgres":
        wh = Warehouse.postgres(postgres_dsn(settings))
        wh.connection.set_session(readonly=True, autocommit=True)
    else:
        wh = Warehouse(analyst_connection(settings.duckdb_path), "duckdb")
    try:
        columns, rows = wh.query(sql)
    finally:
        wh.close()
    return format_table(columns, rows, limit)


def cmd_query(args: argparse.Namespace) -> int:
    from .cli import EXIT_FAILED, EXIT_OK, settings_from_args
    from .config import ConfigError

    settings = settings_from_args(args)
    try:
        print(run_query(settings, args.sql, args.limit))
    except ConfigError:
        raise
    except Exception as exc:  # SQL errors are the user's to read, not a traceback
        print(f"error: {exc.__class__.__name__}: {exc}")
        return EXIT_FAILED
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    from .cli import add_destination_args

    p = sub.add_parser("query", help="run a SQL query on the warehouse and print the result",
                       description="Run one SQL statement on what analysts see, read-only, and print the rows "
                       "as a table: for DuckDB the copy published after each sync (it never waits for, "
                       "nor disturbs, a running sync; it reads that file and no other). Schemas: "
                       "instamojo_raw (raw), instamojo (marts).")
    p.add_argument("sql", help='e.g. "SELECT * FROM instamojo.reconciliation_exceptions LIMIT 20"')
    p.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    add_destination_args(p)
    p.set_defaults(func=cmd_query)
