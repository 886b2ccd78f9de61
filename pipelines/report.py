"""`report`: the offline HTML reconciliation report (the `report` package), from the command line.
Only the glue lives here: options, opening the warehouse read-only, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from .config import Settings

DEFAULT_OUTPUT = Path("data/report/index.html")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@contextmanager
def open_marts(settings: Settings) -> Iterator[Any]:
    """The marts the report reads, opened read-only: the DuckDB file at `settings.duckdb_path`
    (the analysts' copy) or the Postgres database. The one place that knows where they are."""
    from report import Marts, ReportError
    from transforms.warehouse import Warehouse

    if settings.destination == "postgres":
        import psycopg2

        from sources.instamojo.errors import redact

        from .warehouse import postgres_dsn

        try:
            warehouse = Warehouse.postgres(postgres_dsn(settings))
        except psycopg2.Error as exc:
            raise ReportError(f"cannot connect to the Postgres warehouse: {redact(str(exc)).strip()}") from None
        warehouse.connection.set_session(readonly=True)
        where = "Postgres"
    else:
        import duckdb

        path = settings.duckdb_path
        if not path.exists():
            raise ReportError(f"no warehouse at {path}: run `make sync` (or `make demo`) first, "
                              "or point --duckdb-path at one")
        from .warehouse import analyst_connection

        try:
            # the published copy, through a connection that reads that file and nothing else
            warehouse = Warehouse(analyst_connection(path), "duckdb")
        except duckdb.Error as exc:
            raise ReportError(f"cannot open the warehouse {path} read-only: {exc}") from None
        where = str(path)
    try:
        marts = Marts(warehouse, settings.marts_dataset)
        marts.source = f"{where}, schema {settings.marts_dataset}"
        yield marts
    finally:
        warehouse.close()


def report_step(settings: Settings, output: Path) -> tuple[bool, str]:
    """Write the report for every merchant over the default period (as `make demo` does);
    returns (ok, a line saying where it is or why it is not)."""
    from report import ReportError, write_report

    try:
        with open_marts(settings) as marts:
            result = write_report(marts, output, source=marts.source)
    except ReportError as exc:
        return False, f"Report not written: {exc}"
    return True, f"The reconciliation report (open it in a browser; it works offline): {result.path.resolve()}"


def cmd_report(args: argparse.Namespace) -> int:
    from report import ReportError, write_report

    from .cli import EXIT_CONFIG, EXIT_OK, settings_from_args

    try:
        if args.start and args.end and args.start > args.end:
            raise ReportError(f"--from {args.start.isoformat()} is after --to {args.end.isoformat()}: "
                              "the period would be empty")
        settings = settings_from_args(args)
        with open_marts(settings) as marts:
            result = write_report(marts, Path(args.output), merchants=args.merchants, start=args.start,
                                  end=args.end, source=marts.source)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(result.summary())
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    from .cli import add_destination_args

    p = sub.add_parser(
        "report", help="write the offline HTML reconciliation report (data/report/index.html)",
        description="Write one self-contained HTML page from the reconciliation marts: summary per merchant, "
        "settlement flow, payouts, daily settlement, unsettled money, exceptions and orders, with charts, "
        "and each table as a CSV file beside it. Opens offline; reads only the marts.",
        epilog="Exit codes: 0 written; 2 a problem with the options or the warehouse (the message says which).",
    )
    p.add_argument("--merchants", type=_csv, help="comma-separated merchant names (default: every merchant in the marts)")
    p.add_argument("--from", dest="start", type=_date, metavar="YYYY-MM-DD",
                   help="first day of the period, IST (default: 29 days before --to)")
    p.add_argument("--to", dest="end", type=_date, metavar="YYYY-MM-DD",
                   help="last day of the period, IST (default: the data's as-of date)")
    p.add_argument("--output", "-o", default=str(DEFAULT_OUTPUT),
                   help=f"the HTML file to write; the CSV downloads go beside it (default {DEFAULT_OUTPUT})")
    add_destination_args(p)
    p.set_defaults(func=cmd_report)
