"""The command line: `python -m pipelines <command>` (or the `instamojo-elt` script).

Exit codes: 0 all good; 1 a merchant failed, a transform failed or an error-severity check
failed; 2 configuration or usage problem; 3 another sync is running.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt

from sources.instamojo.errors import install_redaction
from sources.instamojo.names import MerchantNameError
from sources.instamojo.settings import ALL_RESOURCES
from sources.instamojo.token_store import TokenStoreError

from . import summary
from .config import DESTINATIONS, ConfigError, Settings, load_settings
from .lock import AlreadyRunning, SyncLock
from .progress import MerchantProgress
from .steps import run_check_step, run_transform_step
from .sync import SyncRun, check_writable_folders, sync_merchants
from .warehouse import publish

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3

log = logging.getLogger("pipelines")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _resources(value: str) -> list[str]:
    names = _csv(value)
    unknown = [n for n in names if n not in ALL_RESOURCES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown resource(s) {', '.join(unknown)}; choose from {', '.join(ALL_RESOURCES)}")
    return names


def _days(value: str) -> float:
    """A non-negative, finite number (days or seconds)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of zero or more")
    return number


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD) or ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_destination_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", choices=DESTINATIONS,
                        help="warehouse to use (default: instamojo_elt.destination in .dlt/config.toml, else duckdb)")
    parser.add_argument("--duckdb-path", help="the DuckDB file analysts read, published after each run (default: instamojo_elt.duckdb_path, else data/warehouse.duckdb)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from dlt config, with the command line's overrides on top."""

    settings = load_settings()
    return settings.with_overrides(
        destination=getattr(args, "destination", None),
        duckdb_path=Path(args.duckdb_path) if getattr(args, "duckdb_path", None) else None,
    )


def progress_collector(mode: str) -> Any:
    """dlt's own progress collectors: bars on a terminal, periodic log lines under cron."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return dlt.progress.tqdm(colour="green")
    if mode == "log":
        return dlt.progress.log(log_period=30, logger=sys.stderr, dump_system_stats=False)
    return None


# -- commands ------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.merchants:
        unknown = [m for m in args.merchants if m not in settings.merchants]
        if unknown:
            raise ConfigError(
                f"unknown merchant(s) {', '.join(unknown)}; configured: {', '.join(settings.merchants) or 'none'}"
            )
    settings.require_credentials()
    if args.lookback_days is not None:
        days = args.lookback_days
        settings = settings.with_overrides(source=dataclasses.replace(
            settings.source, payments_lookback_days=days, payouts_lookback_days=days,
            products_lookback_days=days, orders_lookback_days=days))
    merchants = args.merchants or list(settings.merchants)
    started = time.perf_counter()
    check_writable_folders(settings)
    with SyncLock(settings.lock_path):
        progress = MerchantProgress(len(merchants), args.progress)
        try:
            run = sync_merchants(settings, merchants, resources=args.resources, backfill_from=args.backfill_from,
                                 on_merchant_done=progress.done)
        finally:
            progress.close()
        pii_lines = personal_data_step(settings, run, rewrite=args.rewrite_pii)
        # a deep run (--lookback-days) or --full-check judges every merchant, not only the changed
        ok, extra = finish_run(settings, run, transform=not args.no_transform, check=not args.no_check,
                               progress=progress, full_check=args.full_check or args.lookback_days is not None)
    print(summary.render(run.results, seconds=time.perf_counter() - started, extra=pii_lines + extra,
                         detail=args.summary, load_error=run.load_error))
    return EXIT_OK if ok else EXIT_FAILED


def personal_data_step(settings: Settings, run: SyncRun, *, rewrite: bool) -> list[str]:
    """After the load (the sync lock held): `--rewrite-pii` applies the personal-data settings to
    what was stored before; `pii_retention_days` applies the retention (docs/personal-data.md)."""
    from .personal import apply_retention, rewrite_lines, rewrite_personal_data

    lines = []
    if rewrite:
        lines += rewrite_lines(rewrite_personal_data(settings))
    if run.load_ok:
        lines += apply_retention(settings)
    return lines


def finish_run(settings: Settings, run: SyncRun, *, transform: bool, check: bool,
               progress: MerchantProgress | None = None, freshness: bool = True, full_check: bool = False,
               check_docs_dir: Path | None = None, **transform_overrides: Any) -> tuple[bool, list[str]]:
    """After the load (the sync lock held): rebuild the marts, publish the analysts' copy, run the
    checks on it. `transform_overrides` replace `[transforms]` settings (the demo's `as_of`).
    Returns (ok, summary lines)."""
    ok, extra = run.ok, []
    if run.finished_interrupted:
        extra.append("Finished loading the data an interrupted earlier run had extracted, before this run's.")
    if transform:
        if progress:
            progress.phase("building the marts")
        # only the merchants whose raw rows changed are rebuilt (this run's, and those earlier runs
        # noted without building: see transforms.dbt.note_changed), and then judged
        t_ok, lines = run_transform_step(settings, changed_merchants=run.changed_tables, **transform_overrides)
        ok &= t_ok
        extra += lines
    published = publish(settings)
    if published is not None:
        extra.append(f"Published for analysts: {published} (open it read-only; the pipeline writes its own copy)")
    if transform and check and t_ok:
        if progress:
            progress.phase("running the checks")
        c_ok, lines = run_check_step(settings, freshness=freshness, docs_dir=check_docs_dir,
                                     changed_merchants=None if full_check else run.changed_merchants)
        ok &= c_ok
        extra += [""] + lines
    return ok, extra


def cmd_transform(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_writable_folders(settings)
    with SyncLock(settings.lock_path):
        ok, lines = run_transform_step(settings, full_refresh=args.full_refresh)
        published = publish(settings)
    if published is not None:
        lines.append(f"Published for analysts: {published}")
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    # DuckDB: the checks read the published copy, which a sync never touches while they run;
    # Postgres: wait for a running sync, so the checks never judge half a load
    lock = (SyncLock(settings.lock_path, shared=True, wait=args.wait_seconds,
                     waiting=lambda who: print(f"waiting for the running sync ({who}) to finish …", file=sys.stderr))
            if settings.destination == "postgres" else contextlib.nullcontext())
    with lock:
        ok, lines = run_check_step(settings, freshness=not args.no_freshness, suites=args.suites)
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instamojo-elt",
        description="Instamojo → warehouse ELT: sync merchants' data incrementally with dlt, build "
        "reconciliation marts, and run data-quality checks. Configuration: .dlt/config.toml and "
        ".dlt/secrets.toml (or SOURCES__INSTAMOJO__… environment variables). Try `make demo` first.",
        epilog="Exit codes: 0 ok; 1 a merchant, transform or error-severity check failed; "
        "2 configuration or usage problem; 3 another sync is running.",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level for messages on stderr (default WARNING); secrets are always redacted")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("sync", help="sync merchants into the warehouse, then build marts and run checks",
                       description="Sync every configured merchant (each with its own OAuth tokens and "
                       "incremental state) into the raw dataset, then rebuild the reconciliation marts and "
                       "run the data-quality checks. A merchant that fails (revoked token, missing scope, "
                       "bad page) does not stop the others; the run then exits 1 and says why.")
    p.add_argument("--merchants", type=_csv, help="comma-separated merchant names (default: all configured)")
    p.add_argument("--resources", type=_resources,
                   help=f"comma-separated subset of {', '.join(ALL_RESOURCES)} (default: all granted)")
    p.add_argument("--backfill-from", type=_instant, metavar="DATE",
                   help="re-read everything created or paid out since DATE (cursors are neither used nor moved)")
    p.add_argument("--lookback-days", type=_days, metavar="DAYS",
                   help="re-read this many days behind every cursor for this run only (e.g. a nightly 30 "
                   "catches refunds and disputes that land weeks after a payment); cursors never move back")
    p.add_argument("--rewrite-pii", action="store_true",
                   help="after the load, apply [sources.instamojo.personal_data] to the personal fields already "
                   "stored, in place (the same as `python -m pipelines rewrite-pii`)")
    p.add_argument("--no-transform", action="store_true", help="skip rebuilding the marts (implies --no-check)")
    p.add_argument("--no-check", action="store_true", help="skip the data-quality checks")
    p.add_argument("--full-check", action="store_true",
                   help="judge every merchant's data, not only the merchants this run changed (a run with "
                   "--lookback-days does so anyway)")
    p.add_argument("--summary", choices=["auto", "merchants", "tables"], default="auto",
                   help="the summary's detail: a row per merchant and table, or totals per table with failed "
                   "merchants named (default auto: per merchant up to 25 merchants)")
    p.add_argument("--progress", choices=["auto", "bar", "log", "none"], default="auto",
                   help="progress display: bars on a terminal, periodic log lines otherwise (default auto)")
    add_destination_args(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("transform", help="build the reconciliation marts from the raw tables (dbt)",
                       description="Build the marts (dataset instamojo) from the raw tables with the dbt "
                       "project in transforms/: only the merchants whose raw rows changed since the last "
                       "build are rebuilt, each mart in one transaction (docs/marts.md).")
    p.add_argument("--full-refresh", action="store_true", help="rebuild every merchant from scratch")
    add_destination_args(p)
    p.set_defaults(func=cmd_transform)

    p = sub.add_parser("check", help="run the great-expectations data-quality suites",
                       description="Run the data-quality suites over the raw tables and the marts; exits 1 "
                       "when an error-severity expectation fails. Writes Data Docs (HTML) and says where.")
    p.add_argument("--suites", type=_csv, help="comma-separated suite names or layers (raw, marts)")
    p.add_argument("--no-freshness", action="store_true", help="skip the freshness expectations")
    p.add_argument("--wait-seconds", type=_days, default=900.0, metavar="SECONDS",
                   help="on Postgres, how long to wait for a running sync to finish first (default 900; "
                   "with DuckDB the checks read the published copy and never wait)")
    add_destination_args(p)
    p.set_defaults(func=cmd_check)

    for module in _plugin_modules():
        module.register(sub)
    return parser


def _plugin_modules() -> list[Any]:
    """Commands that live in their own modules (demo, authorize, merchants, bench, bench-merchants)."""
    import importlib

    modules = []
    for name in ("pipelines.demo", "pipelines.authorize", "pipelines.query", "pipelines.bench",
                 "pipelines.bench_merchants", "pipelines.report", "pipelines.forget", "pipelines.personal"):
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ConfigError, TokenStoreError, MerchantNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        print("interrupted: nothing of an unfinished merchant was committed; cursors are unchanged", file=sys.stderr)
        return EXIT_FAILED
