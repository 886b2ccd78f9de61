"""``make bench-sandbox``: how fast the sandbox serves a large merchant.

Starts the sandbox in a separate process with N payments for one merchant (default 1,000,000),
authorizes through the real consent page, then reads every page of ``/v2/payments/`` with a
plain client (``requests.Session`` with keep-alive, ``orjson`` to parse) and prints the
generation time, the rows per second served, and the sandbox process's memory (RSS).

    python -m instamojo_sandbox.bench --payments 200000 --page-size 100
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

import orjson
import requests

from .browser import obtain_tokens
from .config import DEMO_APP


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc (Linux)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, amount, _unit = line.split()
                    values[key[:-1]] = int(amount) / 1024
    except OSError:
        return float("nan"), float("nan")
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc (Linux); NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sandbox(payments: int, page_size: int, seed: int, extra: list[str]) -> tuple[subprocess.Popen, str, float]:
    """Start ``python -m instamojo_sandbox`` on a free port; returns (process, base URL,
    generation seconds as the sandbox reports it)."""
    cmd = [sys.executable, "-m", "instamojo_sandbox", "serve", "--size", "bench", "--payments", str(payments),
           "--port", "0", "--page-size", str(page_size), "--seed", str(seed), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {base_url!r}")
    generation = float("nan")
    for line in proc.stdout:
        match = re.search(r"data generated in ([0-9.]+) s", line)
        if match:
            generation = float(match.group(1))
            break
    return proc, base_url, generation


def read_all(base_url: str, access_token: str, path: str = "/v2/payments/") -> tuple[int, int, float]:
    """Follow ``next`` through every page; returns (rows, pages, seconds)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token}"
    url: str | None = base_url + path
    envelope = path.strip("/").split("/")[-1]
    rows = pages = 0
    started = time.perf_counter()
    while url:
        resp = session.get(url, timeout=60)
        if resp.status_code != 200:
            raise SystemExit(f"GET {url}: {resp.status_code} {resp.text[:200]}")
        body = orjson.loads(resp.content)
        rows += len(body[envelope])
        pages += 1
        url = body["next"]
    return rows, pages, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m instamojo_sandbox.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments of the merchant (default 1,000,000)")
    parser.add_argument("--page-size", type=int, default=100, help="page size (default 100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sandbox-arg", action="append", default=[],
                        help="extra argument for the sandbox, e.g. --sandbox-arg=--latency=0.05")
    args = parser.parse_args(argv)

    launched = time.perf_counter()
    proc, base_url, generation = start_sandbox(args.payments, args.page_size, args.seed, args.sandbox_arg)
    ready = time.perf_counter() - launched
    try:
        rss_start, _ = _rss_mb(proc.pid)
        merchant = "priya_handlooms"
        tokens = obtain_tokens(base_url, DEMO_APP.client_id, DEMO_APP.client_secret, DEMO_APP.redirect_uris[0],
                               merchant, scopes=["payments:read"])
        cpu_before, client_before = _cpu_seconds(proc.pid), time.process_time()
        rows, pages, seconds = read_all(base_url, tokens["access_token"])
        server_cpu, client_cpu = _cpu_seconds(proc.pid) - cpu_before, time.process_time() - client_before
        rss_end, rss_peak = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"sandbox bench: {rows:,} payments, {pages:,} pages of {args.page_size}, cpus={os.cpu_count()}")
    print(f"  generation       {generation:8.2f} s   (process ready after {ready:.2f} s)")
    print(f"  read all pages   {seconds:8.2f} s   {rows / seconds:,.0f} rows/s   {pages / seconds:,.0f} pages/s")
    print(f"  CPU per page     {server_cpu / pages * 1000:8.2f} ms sandbox, {client_cpu / pages * 1000:.2f} ms client "
          f"(the sandbox alone would serve {rows / server_cpu:,.0f} rows/s per core)")
    print(f"  sandbox RSS      {rss_start:8.0f} MiB after generation, {rss_end:.0f} MiB after serving, "
          f"peak {rss_peak:.0f} MiB")
    if rows != args.payments:
        print(f"  note: served {rows:,} rows for {args.payments:,} payments", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
