"""`make demo`: the whole job against the local sandbox, end to end, on a fresh machine.

sandbox (own process) → OAuth authorization-code flow for each merchant through the sandbox's real
consent page and token endpoint → sync → transforms → checks → a DuckDB file an analyst can open;
then the sandbox clock moves a day and an incremental sync shows how little a scheduled run reads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from . import summary
from .config import Settings
from .lock import SyncLock

DEMO_DIR = Path("data/demo")
DEMO_DUCKDB = Path("data/demo.duckdb")
# The sandbox's documented demo app: sandbox-only credentials, public on purpose.
DEMO_CLIENT_ID = "sandbox-demo-client"
DEMO_CLIENT_SECRET = "sandbox-demo-secret"
SAMPLE_QUERY = (
    "SELECT merchant, status, count(*) AS payouts, sum(paid_amount) AS paid "
    "FROM instamojo.payout_reconciliation GROUP BY ALL ORDER BY ALL"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_sandbox(*extra_args: str, redirect_uri: str | None = None) -> Iterator[str]:
    """Start the sandbox in its own process on a free port; yields its base URL; stops it after."""
    cmd = [sys.executable, "-m", "instamojo_sandbox", "serve", "--port", "0", *extra_args]
    if redirect_uri:
        cmd += ["--redirect-uri", redirect_uri]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"https?://[\w.\-]+:\d+", first)
        if not match:
            rest = proc.stdout.read() if proc.poll() is not None and proc.stdout else ""
            raise RuntimeError(f"the sandbox did not start: {first.strip()} {rest.strip()}".strip())
        yield match.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def play_browser(merchant: str) -> Callable[[str], None]:
    """What a merchant does in the browser: open the consent page, choose their account, approve.
    Follows the redirect to the callback server, which completes the flow."""

    def approve(url: str) -> None:
        with requests.Session() as browser:
            page = browser.get(url, timeout=30)
            page.raise_for_status()
            found = re.search(r'name="request_id" value="([^"]+)"', page.text)
            if not found:
                raise RuntimeError("the sandbox's consent page has no approval form")
            action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
            target = requests.compat.urljoin(page.url, action.group(1) if action else "/oauth2/authorize/")
            answer = browser.post(target, data={"request_id": found.group(1), "merchant": merchant,
                                                "decision": "approve"}, allow_redirects=False, timeout=30)
            location = answer.headers.get("Location")
            if answer.status_code != 302 or not location:
                raise RuntimeError(f"the consent page answered HTTP {answer.status_code} without a redirect")
            browser.get(location, timeout=30)  # the callback server receives the code

    return approve


def demo_settings(base_url: str, merchants: tuple[str, ...]) -> Settings:
    """Settings for the demo: everything under data/, nothing shared with a real configuration."""
    return Settings(
        base_url=base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        merchants=merchants,
        refresh_tokens={},
        token_store_path=DEMO_DIR / "tokens.json",
        duckdb_path=DEMO_DUCKDB,
        pipelines_dir=DEMO_DIR / "pipelines",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .authorize import authorize_merchant
    from .cli import EXIT_FAILED, EXIT_OK, finish_run
    from .sync import sync_merchants

    started = time.perf_counter()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    for stale in (DEMO_DUCKDB, DEMO_DUCKDB.with_name(DEMO_DUCKDB.name + ".wal")):
        stale.unlink(missing_ok=True)
    redirect_uri = f"http://127.0.0.1:{_free_port()}/oauth2/callback"
    print(f"1/5 starting the Instamojo sandbox ({args.size} data, seed {args.seed}) …", flush=True)
    with running_sandbox("--size", args.size, "--seed", str(args.seed), redirect_uri=redirect_uri) as base_url:
        merchants = tuple(m["username"] for m in requests.get(f"{base_url}/_sandbox/merchants", timeout=10).json())
        print(f"    sandbox at {base_url}; merchants: {', '.join(merchants)}")
        settings = demo_settings(base_url, merchants)

        print("2/5 authorizing each merchant through the sandbox's OAuth consent page …", flush=True)
        for merchant in merchants:
            with contextlib.redirect_stderr(io.StringIO()):  # the "open this URL" prompt is for people
                result = authorize_merchant(settings, merchant, redirect_uri=redirect_uri, open_browser=False,
                                            on_url=play_browser(merchant), timeout=60)
            print(f"    {merchant}: granted {len(result.scopes)} scopes; refresh token stored in {result.token_store_path}")

        ok = True
        with SyncLock(settings.lock_path):
            print("3/5 first sync (a backfill of every merchant's history, all merchants in one run) …", flush=True)
            run = sync_merchants(settings)
            ok &= run.ok
            print(summary.render(run.results, seconds=run.seconds, load_error=run.load_error))

            requests.post(f"{base_url}/_sandbox/clock/advance", json={"days": 1}, timeout=10).raise_for_status()
            print("\n4/5 one day later: an incremental sync (new records, changed ones, nothing twice) …", flush=True)
            run = sync_merchants(settings)
            ok &= run.ok
            print(summary.render(run.results, seconds=run.seconds, load_error=run.load_error))

            print("\n5/5 reconciliation marts, the analysts' copy, and data-quality checks …", flush=True)
            # "now" for overdue settlements is the sandbox's own clock (its data is dated 2024), read
            # off the newest activity in the data rather than the wall clock of the sync; the
            # sandbox's data is dated in its own clock, so freshness is not checked here
            f_ok, lines = finish_run(settings, run, transform=True, check=True, freshness=False,
                                     check_docs_dir=DEMO_DIR / "check-docs", as_of="latest_activity")
            print("\n".join(lines))
            ok &= f_ok

    query_cmd = f'.venv/bin/python -m pipelines query --duckdb-path {DEMO_DUCKDB} "{SAMPLE_QUERY}"'
    print(f"\nThe warehouse is {DEMO_DUCKDB} (raw data in schema instamojo_raw, marts in instamojo). Query it:")
    print(f"  {query_cmd}")
    print("  or from Python: duckdb.connect('data/demo.duckdb', read_only=True).sql('…').show()")
    print("  The marts and their columns: docs/marts.md; the checks: docs/checks.md.\n")
    from .query import run_query

    print(run_query(demo_settings("", ()), SAMPLE_QUERY))
    from .report import report_step

    r_ok, line = report_step(demo_settings("", ()), DEMO_DIR / "report" / "index.html")
    print(f"\n{line}")
    ok &= r_ok
    print(f"\ndemo {'finished' if ok else 'FINISHED WITH FAILURES'} in {time.perf_counter() - started:.0f} s")
    return EXIT_OK if ok else EXIT_FAILED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run everything against the local sandbox: OAuth, sync, marts, checks (data/demo.duckdb)",
        description="Start the built-in Instamojo sandbox, authorize its merchants through its real "
        "OAuth endpoints, sync them into data/demo.duckdb, sync again a sandbox-day later, build the "
        "reconciliation marts and run the checks. Touches nothing outside data/demo*.",
    )
    p.add_argument("--size", default="demo", choices=["small", "demo"], help="sandbox dataset size (default demo)")
    p.add_argument("--seed", type=int, default=7, help="sandbox random seed (default 7)")
    p.set_defaults(func=cmd_demo)
