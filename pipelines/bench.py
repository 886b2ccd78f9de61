"""`make bench`: throughput and memory of a backfill against the sandbox, as ratios to baselines
measured in the same run (absolute times on these machines are noisy; ratios are what to read).

Every measured run is a separate process (a fresh interpreter, so peak RSS is its own) against a
sandbox in yet another process. Printed:

- backfill rows/s of this pipeline, next to dlt's defaults (its `rest_api` source configured
  plainly for the same endpoints, default loader file format) and to the ceiling (a plain loop
  that only fetches and parses the same pages with requests + orjson);
- peak memory at two history sizes (it should not grow with history);
- requests and wall time of a sync with nothing new;
- with 50 ms added to every sandbox request: parallel page fetching against sequential;
- the marts' rebuild over 1,000,000 payments in DuckDB.

Rows are API records (payments, payouts, orders) in every case, so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ENDPOINTS = (("/v2/payments/", "payments"), ("/v2/payouts/", "payouts"), ("/v2/orders/", "orders"))
RESOURCES = ["payouts", "orders", "payments"]


# -- workers (run in their own process: `python -m pipelines.bench worker …`) --------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    from .config import Settings, SourceOptions
    from .sync import sync_merchant

    work = Path(args.workdir)
    settings = Settings(
        base_url=args.base_url, client_id=args.client_id, client_secret=args.client_secret,
        merchants=(args.merchant,), refresh_tokens={args.merchant: args.refresh_token},
        token_store_path=work / "tokens.json", duckdb_path=work / "ours.duckdb", pipelines_dir=work / "pipelines",
        source=SourceOptions(page_concurrency=args.page_concurrency),
    )
    started = time.perf_counter()
    result = sync_merchant(settings, args.merchant, resources=RESOURCES)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"sync failed: {result.error}")
    records = sum(result.rows.get(t, 0) for t in ("payments", "payouts", "orders"))
    return {"seconds": seconds, "rows": records, "all_rows": result.total_rows,
            "requests": result.total_requests, "peak_rss_mib": _peak_rss_mib()}


def worker_baseline(args: argparse.Namespace) -> dict[str, Any]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    work = Path(args.workdir)
    source = rest_api_source({
        "client": {
            "base_url": args.base_url,
            "auth": {"type": "bearer", "token": args.access_token},
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "resources": [
            {"name": name, "endpoint": {"path": path.strip("/") + "/", "data_selector": name}}
            for path, name in ENDPOINTS
        ],
    })
    pipeline = dlt.pipeline("bench_baseline", destination=dlt.destinations.duckdb(str(work / "baseline.duckdb")),
                            dataset_name="baseline_raw", pipelines_dir=str(work / "pipelines"))
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {"seconds": seconds, "rows": sum(counts.get(n, 0) for _, n in ENDPOINTS), "peak_rss_mib": _peak_rss_mib()}


def worker_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    import orjson

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.access_token}"
    rows = pages = 0
    started = time.perf_counter()
    for path, key in ENDPOINTS:
        url: str | None = args.base_url.rstrip("/") + path
        while url:
            doc = orjson.loads(session.get(url).content)
            rows += len(doc[key])
            pages += 1
            url = doc.get("next")
    return {"seconds": time.perf_counter() - started, "rows": rows, "requests": pages, "peak_rss_mib": _peak_rss_mib()}


WORKERS = {"ours": worker_ours, "baseline": worker_baseline, "ceiling": worker_ceiling}


# -- orchestration -------------------------------------------------------------------------------


class Sandbox:
    """A sandbox process with `payments` payments for one merchant, and its demo app's tokens."""

    def __init__(self, payments: int, latency: float = 0.0) -> None:
        from .demo import running_sandbox

        self._cm = running_sandbox("--payments", str(payments), "--latency", str(latency))
        self.payments = payments

    def __enter__(self) -> "Sandbox":
        started = time.perf_counter()
        self.base_url = self._cm.__enter__()
        self.ready_seconds = time.perf_counter() - started
        self.merchant = requests.get(f"{self.base_url}/_sandbox/merchants", timeout=30).json()[0]["username"]
        return self

    def tokens(self) -> dict[str, str]:
        resp = requests.post(f"{self.base_url}/_sandbox/tokens", json={"merchant": self.merchant}, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def stats_reset(self) -> None:
        requests.post(f"{self.base_url}/_sandbox/stats/reset", timeout=30)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def run_worker(kind: str, sandbox: Sandbox, workdir: Path, **extra: Any) -> dict[str, Any]:
    """Run one measured worker in a fresh process; returns its JSON figures."""
    from .demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    tokens = sandbox.tokens()
    cmd = [sys.executable, "-m", "pipelines.bench", "worker", kind,
           "--base-url", sandbox.base_url, "--merchant", sandbox.merchant, "--workdir", str(workdir),
           "--client-id", DEMO_CLIENT_ID, "--client-secret", DEMO_CLIENT_SECRET,
           "--page-concurrency", str(extra.get("page_concurrency", 16))]
    # tokens travel through the environment, not the command line (visible in `ps`)
    env = {**os.environ, "BENCH_REFRESH_TOKEN": tokens["refresh_token"], "BENCH_ACCESS_TOKEN": tokens["access_token"]}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {proc.stderr.strip()[-2000:] or proc.stdout.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(r: dict[str, Any]) -> float:
    return r["rows"] / r["seconds"] if r["seconds"] else float("inf")


def cmd_bench(args: argparse.Namespace) -> int:
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    root = Path(tempfile.mkdtemp(prefix="instamojo-bench-"))
    try:
        say(f"instamojo-elt bench — {args.payments:,} payments (+ their payouts and orders), page size 100, "
            f"{os.cpu_count()} CPUs. Every figure comes from its own process; ratios are what to compare.")
        with Sandbox(args.payments) as sb:
            say(f"sandbox ready in {sb.ready_seconds:.1f} s at {sb.base_url}")
            ceiling = run_worker("ceiling", sb, root / "ceiling")
            ours = run_worker("ours", sb, root / "ours")
            sb.stats_reset()
            noop = run_worker("ours", sb, root / "ours")
        baseline = None
        if not args.skip_baseline:
            # dlt's defaults normalize every nested order in Python and keep it in memory (3.5 GiB
            # peak at 50,000 payments): measured on a smaller history, which only flatters it
            with Sandbox(args.baseline_payments) as sb:
                baseline = run_worker("baseline", sb, root / "baseline")
        say("")
        say("backfill (rows = API records: payments + payouts + orders)")
        say(f"  {'run':38} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS':>9}")
        for name, r in (("ceiling: requests + orjson, fetch only", ceiling), ("instamojo-elt (DECIMAL money, merge)", ours),
                        (f"dlt defaults ({args.baseline_payments // 1000}k payments)", baseline)):
            if r:
                say(f"  {name:38} {r['rows']:>9,} {r['seconds']:>8.1f} {_rate(r):>9,.0f} {r['peak_rss_mib']:>7.0f} MiB")
        say(f"  instamojo-elt / ceiling   = {_rate(ours) / _rate(ceiling):.2f}   (aim ≥ 0.5)")
        if baseline:
            say(f"  instamojo-elt / dlt defaults = {_rate(ours) / _rate(baseline):.1f}×  (aim ≥ 10×)")
        say(f"  ({ours['all_rows']:,} rows loaded in all, child tables of orders included)")
        say("")
        say(f"sync with nothing new: {noop['requests']} requests, {noop['seconds']:.1f} s wall "
            f"(dlt's fixed cost per run included)")

        if not args.skip_memory:
            say("")
            small, large = args.memory
            peaks = {}
            for n in (small, large):
                with Sandbox(n) as sb:
                    peaks[n] = run_worker("ours", sb, root / f"mem{n}")["peak_rss_mib"]
            say(f"peak memory: {small:,} payments {peaks[small]:.0f} MiB, {large:,} payments {peaks[large]:.0f} MiB "
                f"→ {peaks[large] / peaks[small]:.2f}× for {large / small:.0f}× the history (aim ≤ 1.3×)")

        if not args.skip_latency:
            say("")
            with Sandbox(args.latency_payments, latency=0.05) as sb:
                parallel = run_worker("ours", sb, root / "lat-par", page_concurrency=args.page_concurrency)
                sequential = run_worker("ours", sb, root / "lat-seq", page_concurrency=1)
            say(f"50 ms added to every request, {args.latency_payments:,} payments: sequential {sequential['seconds']:.1f} s, "
                f"up to {args.page_concurrency} pages in parallel {parallel['seconds']:.1f} s "
                f"→ {sequential['seconds'] / parallel['seconds']:.1f}× faster (aim ≥ 6×)")

        if not args.skip_transforms:
            say("")
            from transforms.bench import rebuild_seconds

            figures = rebuild_seconds(1_000_000)
            rows = figures.get("raw_rows", {})
            say(f"marts rebuild over {rows.get('payments', 1_000_000):,} payments (+ {rows.get('orders', 0):,} orders, "
                f"{rows.get('order_payments', 0):,} order payments) in DuckDB: {figures['build_seconds']:.1f} s "
                f"(of which publishing the marts atomically {figures.get('publish_seconds', 0):.1f} s); "
                f"slowest model: {max(figures.get('model_seconds', {'-': 0}).items(), key=lambda kv: kv[1])[0]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def _pair(value: str) -> tuple[int, int]:
    a, b = (int(v) for v in value.split(","))
    return a, b


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure backfill throughput and memory against baselines (not a test)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payments", type=int, default=200_000, help="payments in the backfill (default 200,000)")
    p.add_argument("--memory", type=_pair, default=(100_000, 400_000), metavar="SMALL,LARGE",
                   help="history sizes for the memory comparison (default 100000,400000)")
    p.add_argument("--latency-payments", type=int, default=100_000, help="payments for the latency run (default 100,000)")
    p.add_argument("--page-concurrency", type=int, default=16, help="parallel pages at most in the latency run (default 16, as configured)")
    p.add_argument("--baseline-payments", type=int, default=50_000,
                   help="payments for dlt's defaults (default 50,000: it is slow and memory-hungry)")
    p.add_argument("--skip-baseline", action="store_true", help="skip dlt's defaults (the slowest part)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-transforms", action="store_true")
    p.add_argument("--output", help="also write the figures to this file")
    p.set_defaults(func=cmd_bench)


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.bench worker")
    parser.add_argument("kind", choices=sorted(WORKERS))
    for opt in ("--base-url", "--merchant", "--workdir", "--client-id", "--client-secret"):
        parser.add_argument(opt, required=True)
    parser.add_argument("--page-concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    args.refresh_token = os.environ["BENCH_REFRESH_TOKEN"]
    args.access_token = os.environ["BENCH_ACCESS_TOKEN"]
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    print(json.dumps(WORKERS[args.kind](args)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker_main(sys.argv[2:])
    else:
        from .cli import main

        sys.exit(main(["bench", *sys.argv[1:]]))
