"""The command line: `python -m pipelines <command>` (or the `instamojo-elt` script).

Exit codes: 0 all good; 1 a merchant failed, a transform failed or an error-severity check
failed; 2 configuration or usage problem; 3 another sync is running.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import dlt

from sources.instamojo.errors import install_redaction
from sources.instamojo.settings import ALL_RESOURCES

from . import summary
from .config import DESTINATIONS, ConfigError, Settings, load_settings
from .lock import AlreadyRunning, SyncLock
from .steps import run_check_step, run_transform_step
from .sync import MerchantResult, sync_merchant

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


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD) or ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def add_destination_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", choices=DESTINATIONS,
                        help="warehouse to use (default: instamojo_elt.destination in .dlt/config.toml, else duckdb)")
    parser.add_argument("--duckdb-path", help="DuckDB file (default: instamojo_elt.duckdb_path, else data/instamojo.duckdb)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from dlt config, with the command line's overrides on top."""
    from pathlib import Path

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
        if args.lookback_days < 0:
            raise ConfigError("--lookback-days must be zero or more")
        days = args.lookback_days
        settings = settings.with_overrides(source=dataclasses.replace(
            settings.source, payments_lookback_days=days, payouts_lookback_days=days,
            products_lookback_days=days, orders_lookback_days=days))
    merchants = args.merchants or list(settings.merchants)
    started = time.perf_counter()
    with SyncLock(settings.lock_path):
        results: list[MerchantResult] = []
        for i, merchant in enumerate(merchants, 1):
            print(f"[{i}/{len(merchants)}] syncing merchant {merchant!r} …", file=sys.stderr, flush=True)
            result = sync_merchant(
                settings, merchant, resources=args.resources, backfill_from=args.backfill_from,
                progress=progress_collector(args.progress),
            )
            state = "ok" if result.ok else "FAILED"
            print(f"[{i}/{len(merchants)}] {merchant}: {state}, {result.total_rows:,} rows, "
                  f"{result.total_requests:,} requests, {result.seconds:.1f} s", file=sys.stderr, flush=True)
            results.append(result)
        extra: list[str] = []
        ok = all(r.ok for r in results)
        if not args.no_transform:
            t_ok, lines = run_transform_step(settings)
            ok &= t_ok
            extra += lines
            if t_ok and not args.no_check:
                c_ok, lines = run_check_step(settings)
                ok &= c_ok
                extra += [""] + lines
    print(summary.render(results, seconds=time.perf_counter() - started, extra=extra))
    return EXIT_OK if ok else EXIT_FAILED


def cmd_transform(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    with SyncLock(settings.lock_path):
        ok, lines = run_transform_step(settings, full_refresh=args.full_refresh)
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
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
    p.add_argument("--lookback-days", type=float, metavar="DAYS",
                   help="re-read this many days behind every cursor for this run only (e.g. a nightly 30 "
                   "catches refunds and disputes that land weeks after a payment); cursors never move back")
    p.add_argument("--no-transform", action="store_true", help="skip rebuilding the marts (implies --no-check)")
    p.add_argument("--no-check", action="store_true", help="skip the data-quality checks")
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
    add_destination_args(p)
    p.set_defaults(func=cmd_check)

    for module in _plugin_modules():
        module.register(sub)
    return parser


def _plugin_modules() -> list[Any]:
    """Commands that live in their own modules (demo, authorize, merchants, bench)."""
    import importlib

    modules = []
    for name in ("pipelines.demo", "pipelines.authorize", "pipelines.query", "pipelines.bench"):
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
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        print("interrupted: nothing of an unfinished merchant was committed; cursors are unchanged", file=sys.stderr)
        return EXIT_FAILED
