"""`make bench`: throughput and memory of one merchant's backfill against the sandbox, as ratios to
peers measured in the same run, interleaved (absolute times on these machines are noisy, and
move from one minute to the next; ratios of runs taken side by side are what to read).

Every measured run is a separate process (a fresh interpreter, so peak RSS is its own) against a
sandbox in yet another process. The runs compared are interleaved, round after round (A B C A B
C …, `--pairs` rounds, at least three), and each ratio is printed as the median of the rounds'
ratios with their min–max. Printed:

- backfill rows/s of this pipeline into DuckDB and into Postgres, next to the ceiling (a plain
  loop that only fetches and parses the same pages with requests + orjson) and to the peer a
  careful dlt user would write (dlt's `rest_api` source with the parquet loader, parallelized
  resources, the same page size, and a merge on the primary key as ours does);
- next to dlt's defaults (its `rest_api` source configured plainly: insert_values, one page at a
  time, the API's default page size) on a smaller history, with ours on the same history;
- peak memory at two history sizes (it should not grow with history);
- requests and wall time of a sync with nothing new;
- with 50 ms added to every sandbox request: parallel page fetching against sequential;
- the marts in DuckDB (transforms/bench.py): a full dbt build over 1,000,000 payments next to the
  runner used before dbt, and incremental builds after 1% of 1,000 merchants changed over
  10,000,000 payments next to a full build of the same (`--marts-*` set the sizes).

Rows are API records (payments, payouts, orders) in every case, so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import requests

from sources.instamojo.settings import DEFAULT_PAGE_SIZE

ENDPOINTS = (("/v2/payments/", "payments"), ("/v2/payouts/", "payouts"), ("/v2/orders/", "orders"))
RESOURCES = ["payouts", "orders", "payments"]
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"  # the project's test server (trust auth)


# -- workers (run in their own process: `python -m pipelines.bench worker …`) --------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    """This pipeline's sync of the merchant: into DuckDB, or into Postgres (datasets named after
    `--dataset`, dropped by the parent afterwards)."""
    from .config import Settings, SourceOptions
    from .sync import sync_merchant

    work = Path(args.workdir)
    postgres = {"destination": "postgres", "postgres_credentials": args.postgres_dsn,
                "raw_dataset": f"{args.dataset}_raw", "marts_dataset": args.dataset} if args.postgres_dsn else {}
    settings = Settings(
        base_url=args.base_url, client_id=args.client_id, client_secret=args.client_secret,
        merchants=(args.merchant,), refresh_tokens={args.merchant: args.refresh_token},
        token_store_path=work / "tokens.json", duckdb_path=work / "ours.duckdb", pipelines_dir=work / "pipelines",
        source=SourceOptions(page_concurrency=args.page_concurrency, page_size=args.page_size), **postgres,
    )
    started = time.perf_counter()
    result = sync_merchant(settings, args.merchant, resources=RESOURCES)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"sync failed: {result.error}")
    records = sum(result.rows.get(t, 0) for t in ("payments", "payouts", "orders"))
    return {"seconds": seconds, "rows": records, "all_rows": result.total_rows,
            "requests": result.total_requests, "peak_rss_mib": _peak_rss_mib()}


def _rest_api_config(args: argparse.Namespace, *, careful: bool) -> dict[str, Any]:
    """dlt's `rest_api` source for the same three listings. Plain: what its docs show first.
    Careful: the same page size as ours (`limit`), each listing extracted in its own thread
    (`parallelized`), and merged on its primary key, as ours is."""
    resource_extra: dict[str, Any] = {"parallelized": True, "primary_key": "id", "write_disposition": "merge"}
    params = {"params": {"limit": args.page_size}} if careful else {}
    return {
        "client": {
            "base_url": args.base_url,
            "auth": {"type": "bearer", "token": args.access_token},
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "resources": [
            {"name": name, "endpoint": {"path": path.strip("/") + "/", "data_selector": name, **params},
             **(resource_extra if careful else {})}
            for path, name in ENDPOINTS
        ],
    }


def _worker_rest_api(args: argparse.Namespace, *, careful: bool) -> dict[str, Any]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    work = Path(args.workdir)
    source = rest_api_source(_rest_api_config(args, careful=careful))  # type: ignore[arg-type]
    name = "bench_peer" if careful else "bench_baseline"
    pipeline = dlt.pipeline(name, destination=dlt.destinations.duckdb(str(work / f"{name}.duckdb")),
                            dataset_name=f"{name}_raw", pipelines_dir=str(work / "pipelines"))
    started = time.perf_counter()
    if careful:
        pipeline.run(source, loader_file_format="parquet")
    else:
        pipeline.run(source)  # dlt's defaults: its own file format (insert_values)
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    assert trace is not None and trace.last_normalize_info is not None  # the run above normalized
    counts = trace.last_normalize_info.row_counts
    return {"seconds": seconds, "rows": sum(counts.get(n, 0) for _, n in ENDPOINTS), "peak_rss_mib": _peak_rss_mib()}


def worker_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """dlt's defaults: `rest_api` configured plainly (insert_values, one page at a time)."""
    return _worker_rest_api(args, careful=False)


def worker_peer(args: argparse.Namespace) -> dict[str, Any]:
    """The careful dlt user's `rest_api`: parquet, parallelized resources, our page size, merge."""
    return _worker_rest_api(args, careful=True)


def worker_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Fetch and parse the same pages (same page size), nothing else: the most a loader could do."""
    import orjson

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.access_token}"
    rows = pages = 0
    started = time.perf_counter()
    for path, key in ENDPOINTS:
        url: str | None = args.base_url.rstrip("/") + path + f"?limit={args.page_size}"
        while url:
            doc = orjson.loads(session.get(url).content)
            rows += len(doc[key])
            pages += 1
            url = doc.get("next")
    return {"seconds": time.perf_counter() - started, "rows": rows, "requests": pages, "peak_rss_mib": _peak_rss_mib()}


WORKERS = {"ours": worker_ours, "baseline": worker_baseline, "peer": worker_peer, "ceiling": worker_ceiling}


# -- orchestration -------------------------------------------------------------------------------


class Sandbox:
    """A sandbox process with `payments` payments for one merchant, and its demo app's tokens."""

    def __init__(self, payments: int, latency: float = 0.0) -> None:
        from .demo import running_sandbox

        self._cm = running_sandbox("--payments", str(payments), "--latency", str(latency))
        self.payments = payments

    def __enter__(self) -> Self:
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
    """Run one measured worker in a fresh process; returns its JSON figures. `extra`:
    page_concurrency, page_size, and postgres_dsn with dataset for ours into Postgres."""
    from .demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    tokens = sandbox.tokens()
    cmd = [sys.executable, "-m", "pipelines.bench", "worker", kind,
           "--base-url", sandbox.base_url, "--merchant", sandbox.merchant, "--workdir", str(workdir),
           "--client-id", DEMO_CLIENT_ID, "--client-secret", DEMO_CLIENT_SECRET,
           "--page-concurrency", str(extra.get("page_concurrency", 16)),
           "--page-size", str(extra.get("page_size", DEFAULT_PAGE_SIZE))]
    if extra.get("postgres_dsn"):
        cmd += ["--postgres-dsn", extra["postgres_dsn"], "--dataset", extra["dataset"]]
    # tokens travel through the environment, not the command line (visible in `ps`)
    env = {**os.environ, "BENCH_REFRESH_TOKEN": tokens["refresh_token"], "BENCH_ACCESS_TOKEN": tokens["access_token"]}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {proc.stderr.strip()[-2000:] or proc.stdout.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(r: dict[str, Any]) -> float:
    return r["rows"] / r["seconds"] if r["seconds"] else float("inf")


def _spread(values: list[float], fmt: str = "{:.2f}", unit: str = "") -> str:
    """`median (min–max)` of one figure over the rounds."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)}{unit} ({fmt.format(low)}–{fmt.format(high)}{unit})"


def _ratios(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    """Round by round: rows/s of `a` over rows/s of `b`, measured side by side."""
    return [_rate(x) / _rate(y) for x, y in zip(a, b, strict=True)]


# A comparison: (label, worker kind, extra arguments of run_worker)
Contender = tuple[str, str, dict[str, Any]]


def interleaved(sb: Sandbox, root: Path, contenders: list[Contender], rounds: int,
                say: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """Each contender's backfill, `rounds` times, in turn (A B C A B C …): a slow minute of a
    shared machine then hits every contender of that round alike, and the ratios of one round
    compare runs taken seconds apart. Every backfill starts from an empty folder (and dataset)."""
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in contenders}
    for i in range(rounds):
        for label, kind, extra in contenders:
            extra = {**extra, "dataset": f"{extra['dataset']}_{i}"} if "dataset" in extra else extra
            results[label].append(run_worker(kind, sb, root / f"{label}-{i}", **extra))
        say(f"  … round {i + 1} of {rounds}: " + ", ".join(
            f"{label} {results[label][-1]['seconds']:.1f} s" for label, _, _ in contenders))
    return results


def postgres_reachable(dsn: str) -> str | None:
    """None when Postgres answers at `dsn`, else why not."""
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def drop_schemas(dsn: str, prefix: str) -> list[str]:
    """Drop the throwaway datasets (schemas named `prefix…`) the Postgres runs made."""
    import psycopg2

    con = psycopg2.connect(dsn, connect_timeout=10)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace")
            names = [n for (n,) in cur.fetchall() if n.startswith(prefix)]
            for name in names:
                cur.execute(f'DROP SCHEMA "{name}" CASCADE')  # names we made: [a-z0-9_] only
    finally:
        con.close()
    return names


def load_average() -> str:
    """The machine's load average, printed beside every figure: these figures move with it."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


def bench_backfill(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The interleaved backfills on one sandbox (ceiling, ours → DuckDB, the careful dlt peer,
    ours → Postgres), then ours again with nothing new."""
    page = {"page_size": args.page_size}
    contenders: list[Contender] = [("ceiling", "ceiling", page), ("ours", "ours", page), ("peer", "peer", page)]
    pg_prefix = f"bench_{os.getpid()}"
    why_not = "--skip-postgres" if args.skip_postgres else postgres_reachable(args.postgres_dsn)
    if why_not is None:
        contenders.append(("postgres", "ours", {**page, "postgres_dsn": args.postgres_dsn, "dataset": pg_prefix}))
    try:
        with Sandbox(args.payments) as sb:
            say(f"sandbox ready in {sb.ready_seconds:.1f} s at {sb.base_url}")
            results: dict[str, Any] = interleaved(sb, root, contenders, args.pairs, say)
            sb.stats_reset()
            results["noop"] = run_worker("ours", sb, root / f"ours-{args.pairs - 1}", **page)
    finally:
        if why_not is None:
            drop_schemas(args.postgres_dsn, pg_prefix)
    results["postgres_skipped"] = why_not
    results["postgres_prefix"] = pg_prefix
    return results


def report_backfill(args: argparse.Namespace, results: dict[str, Any], say: Callable[[str], None]) -> None:
    """The backfill table and its ratios (median and min–max of the rounds)."""
    names = {"ceiling": "ceiling: requests + orjson, fetch only", "ours": "instamojo-elt → DuckDB",
             "postgres": "instamojo-elt → Postgres",
             "peer": f"careful dlt: rest_api, parquet, parallel, {args.page_size}/page, merge"}
    say("")
    say(f"backfill, {args.payments:,} payments (+ their payouts and orders), {args.pairs} rounds interleaved; "
        "rows = API records; rows/s and peak RSS: median (min–max)")
    say(f"  {'run':58} {'rows':>9} {'rows/s':>26} {'peak RSS MiB':>16}")
    for label, name in names.items():
        runs = results.get(label)
        if runs:
            say(f"  {name:58} {runs[0]['rows']:>9,} {_spread([_rate(r) for r in runs], '{:,.0f}'):>26} "
                f"{_spread([r['peak_rss_mib'] for r in runs], '{:.0f}'):>16}")
    ours = results["ours"]
    say(f"  instamojo-elt / ceiling     = {_spread(_ratios(ours, results['ceiling']))}   (aim ≥ 0.5)")
    say(f"  instamojo-elt / careful dlt = {_spread(_ratios(ours, results['peer']), unit='×')}")
    if results.get("postgres"):
        say(f"  Postgres / DuckDB (ours)    = {_spread(_ratios(results['postgres'], ours))}   "
            f"(into throwaway schemas {results['postgres_prefix']}_*, dropped after)")
    else:
        say(f"  Postgres: not measured ({results['postgres_skipped']})")
    say(f"  ({ours[0]['all_rows']:,} rows loaded in all, child tables of orders included)")
    noop = results["noop"]
    say("")
    say(f"sync with nothing new: {noop['requests']} requests, {noop['seconds']:.1f} s wall "
        "(dlt's fixed cost per run included)")


def bench_defaults(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> None:
    """dlt's defaults against ours on the same smaller history, interleaved. (dlt's defaults
    normalize every nested order in Python and keep it in memory: 3.5 GiB peak at 50,000
    payments, and about 1,000 rows/s, so they get a history of their own.)"""
    with Sandbox(args.baseline_payments) as sb:
        results = interleaved(sb, root, [("defaults", "baseline", {}), ("ours-small", "ours", {"page_size": args.page_size})],
                              args.pairs, say)
    say("")
    say(f"dlt defaults (rest_api configured plainly: insert_values, one page at a time, the API's default page size), "
        f"{args.baseline_payments:,} payments, interleaved with ours on the same history")
    for label, name in (("defaults", "dlt defaults"), ("ours-small", "instamojo-elt → DuckDB")):
        runs = results[label]
        say(f"  {name:58} {runs[0]['rows']:>9,} {_spread([_rate(r) for r in runs], '{:,.0f}'):>26} "
            f"{_spread([r['peak_rss_mib'] for r in runs], '{:.0f}'):>16}")
    say(f"  instamojo-elt / dlt defaults = {_spread(_ratios(results['ours-small'], results['defaults']), '{:.1f}', '×')}"
        "   (aim ≥ 10×)")


def bench_memory(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> None:
    """Peak RSS of ours at two history sizes."""
    small, large = args.memory
    peaks = {}
    for n in (small, large):
        with Sandbox(n) as sb:
            peaks[n] = run_worker("ours", sb, root / f"mem{n}", page_size=args.page_size)["peak_rss_mib"]
    say("")
    say(f"peak memory: {small:,} payments {peaks[small]:.0f} MiB, {large:,} payments {peaks[large]:.0f} MiB "
        f"→ {peaks[large] / peaks[small]:.2f}× for {large / small:.0f}× the history (aim ≤ 1.3×)")


def bench_latency(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> None:
    """With 50 ms added to every request: ours fetching pages in parallel against one at a time."""
    page = args.page_size
    with Sandbox(args.latency_payments, latency=0.05) as sb:
        parallel = run_worker("ours", sb, root / "lat-par", page_concurrency=args.page_concurrency, page_size=page)
        sequential = run_worker("ours", sb, root / "lat-seq", page_concurrency=1, page_size=page)
    say("")
    say(f"50 ms added to every request, {args.latency_payments:,} payments at {page} a page: sequential "
        f"{sequential['seconds']:.1f} s, up to {args.page_concurrency} pages in parallel {parallel['seconds']:.1f} s "
        f"→ {sequential['seconds'] / parallel['seconds']:.1f}× faster (aim ≥ 6×)")


def bench_transforms(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """The marts (transforms/bench.py): a full dbt build next to the runner used before dbt, and
    incremental builds after 1% of the merchants changed next to a full build of the same data."""
    from transforms.bench import compare

    say("")
    with tempfile.TemporaryDirectory(prefix="transforms-bench-") as tmp:
        compare(Path(tmp), say, payments=args.marts_payments, runs=args.pairs,
                incremental_payments=args.marts_incremental_payments, merchants=args.marts_merchants,
                incremental_runs=args.pairs)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run every part of the bench and print the figures."""
    if args.pairs < 3:
        raise SystemExit("error: --pairs must be at least 3 (a median and a spread need a few rounds)")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    root = Path(tempfile.mkdtemp(prefix="instamojo-bench-"))
    started = time.perf_counter()
    try:
        say(f"instamojo-elt bench — {args.payments:,} payments (+ their payouts and orders), page size "
            f"{args.page_size} (asked with `limit`), {os.cpu_count()} CPUs, {load_average()}. Every figure comes from its own "
            "process; the machine may be shared, so read the ratios of runs taken side by side.")
        report_backfill(args, bench_backfill(args, root, say), say)
        if not args.skip_baseline:
            bench_defaults(args, root, say)
        if not args.skip_memory:
            bench_memory(args, root, say)
        if not args.skip_latency:
            bench_latency(args, root, say)
        if not args.skip_transforms:
            bench_transforms(args, say)
        say("")
        say(f"done in {time.perf_counter() - started:.0f} s; at the end: {load_average()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def _pair(value: str) -> tuple[int, int]:
    a, b = (int(v) for v in value.split(","))
    return a, b


def register(sub: argparse._SubParsersAction) -> None:
    """The `bench` command of `python -m pipelines`."""
    p = sub.add_parser("bench", help="measure backfill throughput and memory against baselines (not a test)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payments", type=int, default=50_000,
                   help="payments in the interleaved backfills (default 50,000)")
    p.add_argument("--pairs", type=int, default=3,
                   help="rounds of the interleaved runs compared; each ratio is their median, min–max (default 3)")
    p.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                   help=f"records a page (`limit`) for ours, the ceiling and the careful dlt peer (default {DEFAULT_PAGE_SIZE})")
    p.add_argument("--postgres-dsn", default=POSTGRES_DSN,
                   help=f"Postgres for the Postgres backfill, in throwaway schemas dropped after (default {POSTGRES_DSN})")
    p.add_argument("--skip-postgres", action="store_true")
    p.add_argument("--memory", type=_pair, default=(100_000, 400_000), metavar="SMALL,LARGE",
                   help="history sizes for the memory comparison (default 100000,400000)")
    p.add_argument("--latency-payments", type=int, default=50_000, help="payments for the latency run (default 50,000)")
    p.add_argument("--page-concurrency", type=int, default=16, help="parallel pages at most in the latency run (default 16, as configured)")
    p.add_argument("--baseline-payments", type=int, default=10_000,
                   help="payments for dlt's defaults and ours beside them (default 10,000: they are slow and "
                   "memory-hungry)")
    p.add_argument("--skip-baseline", action="store_true", help="skip dlt's defaults (the slowest part)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--marts-payments", type=int, default=1_000_000,
                   help="payments of the marts' full-build comparison (default 1,000,000)")
    p.add_argument("--marts-incremental-payments", type=int, default=10_000_000,
                   help="payments of the marts' incremental comparison (default 10,000,000)")
    p.add_argument("--marts-merchants", type=int, default=1_000,
                   help="merchants of the marts' incremental comparison; 1%% of them change (default 1,000)")
    p.add_argument("--skip-transforms", action="store_true")
    p.add_argument("--output", help="also write the figures to this file")
    p.set_defaults(func=cmd_bench)


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.bench worker")
    parser.add_argument("kind", choices=sorted(WORKERS))
    for opt in ("--base-url", "--merchant", "--workdir", "--client-id", "--client-secret"):
        parser.add_argument(opt, required=True)
    parser.add_argument("--page-concurrency", type=int, default=16)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--postgres-dsn")
    parser.add_argument("--dataset")
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
