"""`make bench-merchants`: many merchants in one sync, against the sandbox, next to the
per-merchant engine it replaced, measured in the same run on the same sandbox.

Printed for one run (issue 11, "Benchmark: make bench-merchants"):

- the backfill of N merchants, a sync with nothing new, and an hourly sync after the sandbox's
  clock moves an hour: each as wall time of extract + load (the sync engine without marts or
  checks), the requests the sandbox counted, and the rows loaded;
- peak memory (RSS) of the sync process at a smaller number of merchants and at N;
- the sync with nothing new and the hourly sync again with 100 ms added to every request;
- the baseline: the earlier per-merchant engine (one dlt pipeline per merchant, one after
  another, as `make sync` ran it) on a sample of merchants, its backfill and then its sync with
  nothing new, scaled to N, and our ratio to it.

Every sync runs in its own process (a fresh interpreter, so its peak RSS is its own) in a project
folder of its own (`.dlt/config.toml` as shipped, tokens in `.dlt/secrets.toml`, as a user has
them), against one sandbox in yet another process. Wall times are measured inside the sync
process, around the sync itself: interpreter start and imports are left out on both sides.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests

from pipelines.bench import load_average

REPO = Path(__file__).resolve().parents[1]
# The last commit whose sync ran one dlt pipeline per merchant (tests/pipeline/test_upgrade.py
# runs the same one). Its code is exported from git history at run time into a scratch folder and
# run from there; none of it is kept in this tree, where it would be dead code that linters, type
# checkers and readers would trip over.
PER_MERCHANT_VERSION = "21b6bd9"
LEGACY_PATHS = ("sources", "pipelines", "transforms", "checks", ".dlt/config.toml")
# Where the sync process prints its figures, one JSON line after this marker.
MARK = "BENCH-MERCHANTS-RESULT "

# The aims of issue 11, for 1,000 merchants on this 2-core machine (seconds unless said).
AIM_BACKFILL_S = 300.0
AIM_NOTHING_NEW_S = 60.0
AIM_HOURLY_LATENCY_S = 120.0
AIM_MEMORY_RATIO = 1.3
AIM_BASELINE_RATIO = 20.0
AIMS_AT = 1000  # merchants the absolute aims are stated for


@dataclass
class Phase:
    """One measured sync: what it cost and what it did."""

    name: str
    seconds: float
    requests: int
    rows: int | None = None
    peak_rss_mib: float | None = None
    merchants: int = 0
    failed: int = 0


# -- the sync process (`python -m pipelines.bench_merchants worker`, cwd = a project folder) -----


def _worker() -> None:
    """Sync every configured merchant once, extract + load only, and print the figures."""
    from .config import load_settings
    from .sync import sync_merchants

    settings = load_settings()
    started = time.perf_counter()
    run = sync_merchants(settings)
    seconds = time.perf_counter() - started
    failed = [r for r in run.results if not r.ok]
    print(MARK + json.dumps({
        "code_file": __file__,
        "seconds": seconds, "merchants": len(run.results), "failed": len(failed),
        "first_error": failed[0].error if failed else run.load_error,  # already redacted
        "rows": sum(r.total_rows for r in run.results),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }), flush=True)


# The per-merchant engine's own command line, timed around `main` (after its imports).
LEGACY_DRIVER = f"""
import json, sys, time
import pipelines
from pipelines.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
print({MARK!r} + json.dumps({{"code": code, "seconds": time.perf_counter() - started,
                              "code_file": pipelines.__file__}}), flush=True)
"""


# -- the sandbox ---------------------------------------------------------------------------------


class SandboxProcess:
    """A sandbox of `merchants` merchants in its own process, driven through its admin API."""

    def __init__(self, merchants: int, days: int, payments_per_day: float) -> None:
        from .demo import running_sandbox

        self._cm = running_sandbox("--merchants", str(merchants), "--days", str(days),
                                   "--payments-per-day", str(payments_per_day))

    def __enter__(self) -> Self:
        started = time.perf_counter()
        self.base_url = self._cm.__enter__()
        self.ready_seconds = time.perf_counter() - started
        self.merchants = [m["username"] for m in self.admin("GET", "merchants")]
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=600)
        resp.raise_for_status()
        return resp.json()

    def tokens(self, merchants: list[str] | None = None) -> dict[str, str]:
        """Fresh refresh tokens without the consent page: merchant → token."""
        body: dict[str, Any] = {"all": True} if merchants is None else {"merchants": merchants}
        return {t["merchant"]: t["refresh_token"] for t in self.admin("POST", "tokens", body)}

    def requests_since_reset(self) -> int:
        return int(self.admin("GET", "stats")["total"])

    def reset_requests(self) -> None:
        self.admin("POST", "stats/reset")

    def advance(self, hours: float) -> None:
        self.admin("POST", "clock/advance", {"hours": hours})

    def latency(self, seconds: float) -> None:
        self.admin("PATCH", "config", {"latency": seconds})


# -- project folders and runs --------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string (ASCII names and tokens)


def make_project(folder: Path, config_toml: Path, base_url: str, tokens: dict[str, str]) -> Path:
    """A project folder as a user has it: the shipped `.dlt/config.toml`, and the app's
    credentials, the merchants and their refresh tokens in `.dlt/secrets.toml` (mode 0600)."""
    from .demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    dlt_dir = folder / ".dlt"
    dlt_dir.mkdir(parents=True)
    shutil.copyfile(config_toml, dlt_dir / "config.toml")
    lines = ["[sources.instamojo]", f"base_url = {_toml_str(base_url)}",
             f"client_id = {_toml_str(DEMO_CLIENT_ID)}", f"client_secret = {_toml_str(DEMO_CLIENT_SECRET)}",
             "merchants = [" + ", ".join(_toml_str(m) for m in tokens) + "]", "",
             "[sources.instamojo.refresh_tokens]"]
    lines += [f"{_toml_str(m)} = {_toml_str(t)}" for m, t in tokens.items()]
    secrets = dlt_dir / "secrets.toml"
    secrets.touch(mode=0o600)
    secrets.write_text("\n".join(lines) + "\n")
    return folder


def _clean_env(code: Path) -> dict[str, str]:
    """This environment without any pipeline configuration of its own, importing `code`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "DESTINATION__"))}
    env["PYTHONPATH"] = str(code)  # before the installed package: this tree's (or that version's) code
    return env


def _run_process(cmd: list[str], project: Path, code: Path) -> dict[str, Any]:
    proc = subprocess.run(cmd, check=False, cwd=project, env=_clean_env(code), capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[1:4])} failed (exit {proc.returncode}): "
                           f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
    return json.loads(lines[-1][len(MARK):])


def _check_code(out: dict[str, Any], code: Path) -> None:
    """The sync process ran the code it was meant to (not an installed copy of another tree)."""
    if not Path(out["code_file"]).resolve().is_relative_to(code.resolve()):
        raise RuntimeError(f"the sync process imported {out['code_file']}, not the code in {code}")


def run_ours(sb: SandboxProcess, project: Path, name: str) -> Phase:
    """One sync of every merchant of `project` by this tree's engine, in its own process."""
    sb.reset_requests()
    out = _run_process([sys.executable, "-m", "pipelines.bench_merchants", "worker"], project, REPO)
    _check_code(out, REPO)
    if out["failed"]:
        raise RuntimeError(f"{name}: {out['failed']} merchant(s) failed, e.g. {out['first_error']}")
    return Phase(name, out["seconds"], sb.requests_since_reset(), out["rows"], out["peak_rss_mib"],
                 out["merchants"], out["failed"])


def legacy_checkout(into: Path) -> Path:
    """The per-merchant engine's code, exported from git history (see PER_MERCHANT_VERSION)."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", PER_MERCHANT_VERSION, *LEGACY_PATHS],
                                 capture_output=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise RuntimeError(f"the baseline needs commit {PER_MERCHANT_VERSION} in this repository's history "
                           f"(a full clone), or --baseline-sample 0: {exc}") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_legacy(sb: SandboxProcess, code: Path, project: Path, merchants: list[str], name: str) -> Phase:
    """One `sync` of `merchants` by the per-merchant engine: one pipeline per merchant, in turn."""
    sb.reset_requests()
    cmd = [sys.executable, "-c", LEGACY_DRIVER, "sync", "--merchants", ",".join(merchants),
           "--no-transform", "--progress", "none"]
    out = _run_process(cmd, project, code)
    _check_code(out, code)
    if out["code"] != 0:
        raise RuntimeError(f"{name}: the per-merchant sync exited {out['code']}")
    return Phase(name, out["seconds"], sb.requests_since_reset(), merchants=len(merchants))


# -- the measurements ----------------------------------------------------------------------------


def measure_many(sb: SandboxProcess, root: Path, say: Callable[[str], None]) -> dict[str, Phase]:
    """Our backfill and sync with nothing new, at the sandbox's clock."""
    project = make_project(root / "ours", REPO / ".dlt" / "config.toml", sb.base_url, sb.tokens())
    phases = {}
    for key, name in (("backfill", "backfill"), ("nothing_new", "sync, nothing new")):
        phases[key] = run_ours(sb, project, name)
        say(f"  … {name}: {phases[key].seconds:.1f} s")
    return phases


def measure_hourly(sb: SandboxProcess, root: Path, latency: float | None, say: Callable[[str], None]) -> dict[str, Phase]:
    """The clock moves an hour, then our hourly sync; with `latency`, first a sync with nothing
    new and then the hourly one, with that much added to every request."""
    project = root / "ours"
    phases = {}
    if latency:
        sb.latency(latency)
    try:
        tag = f", +{latency * 1000:.0f} ms a request" if latency else ""
        if latency:
            phases["nothing_new"] = run_ours(sb, project, f"sync, nothing new{tag}")
            say(f"  … sync with nothing new{tag}: {phases['nothing_new'].seconds:.1f} s")
        sb.advance(hours=1)
        phases["hourly"] = run_ours(sb, project, f"hourly (clock +1 h){tag}")
        say(f"  … hourly sync{tag}: {phases['hourly'].seconds:.1f} s")
    finally:
        if latency:
            sb.latency(0.0)
    return phases


def measure_baseline(sb: SandboxProcess, root: Path, sample: int, say: Callable[[str], None]) -> dict[str, Phase]:
    """The per-merchant engine on a sample of merchants (spread over the list): its backfill, then
    its sync with nothing new, at the same clock as ours."""
    step = max(1, len(sb.merchants) // sample)
    merchants = sb.merchants[::step][:sample]
    code = legacy_checkout(root / "per-merchant-code")
    project = make_project(root / "per-merchant", code / ".dlt" / "config.toml", sb.base_url, sb.tokens(merchants))
    phases = {}
    for key, name in (("backfill", "backfill"), ("nothing_new", "sync, nothing new")):
        phases[key] = run_legacy(sb, code, project, merchants, f"per-merchant {name}")
        say(f"  … per-merchant {name}, {len(merchants)} merchants: {phases[key].seconds:.1f} s")
    return phases


def measure_memory(args: argparse.Namespace, root: Path, say: Callable[[str], None]) -> Phase:
    """Our backfill's peak RSS at the smaller number of merchants, on a sandbox of its own."""
    with SandboxProcess(args.memory_merchants, args.days, args.payments_per_day) as sb:
        project = make_project(root / "memory", REPO / ".dlt" / "config.toml", sb.base_url, sb.tokens())
        phase = run_ours(sb, project, f"backfill, {args.memory_merchants} merchants")
    say(f"  … backfill of {args.memory_merchants} merchants: {phase.seconds:.1f} s, {phase.peak_rss_mib:.0f} MiB")
    return phase


# -- the report ----------------------------------------------------------------------------------


def _verdict(value: float, aim: float, *, at_most: bool, unit: str, applies: bool = True) -> str:
    sign = "≤" if at_most else "≥"
    if not applies:
        return f"aim {sign} {aim:g}{unit} at {AIMS_AT:,} merchants: not judged here"
    met = value <= aim if at_most else value >= aim
    return f"aim {sign} {aim:g}{unit}: {'met' if met else 'NOT met'}"


def _row(phase: Phase, aim: str = "") -> str:
    rows = f"{phase.rows:,}" if phase.rows is not None else "—"
    rss = f"{phase.peak_rss_mib:,.0f} MiB" if phase.peak_rss_mib is not None else "—"
    return (f"  {phase.name:50} {phase.merchants:>9,} {phase.seconds:>8,.1f} {phase.requests:>9,} {rows:>10} {rss:>9}  "
            f"{aim}").rstrip()


def _scaled(phase: Phase, n: int) -> Phase:
    factor = n / phase.merchants
    return Phase(f"{phase.name} (×{factor:.3g}: {phase.merchants} → {n:,})", phase.seconds * factor,
                 round(phase.requests * factor), merchants=n)


def render(args: argparse.Namespace, ours: dict[str, Phase], latency: dict[str, Phase],
           baseline: dict[str, Phase], memory_small: Phase | None) -> list[str]:
    """The table and the ratios, each figure next to its aim."""
    n = args.merchants
    at_scale = n >= AIMS_AT
    out = ["", f"  {'run':50} {'merchants':>9} {'wall s':>8} {'requests':>9} {'rows':>10} {'peak RSS':>9}"]
    out.append(_row(ours["backfill"], _verdict(ours["backfill"].seconds, AIM_BACKFILL_S, at_most=True, unit=" s",
                                               applies=at_scale)))
    out.append(_row(ours["nothing_new"], _verdict(ours["nothing_new"].seconds, AIM_NOTHING_NEW_S, at_most=True,
                                                  unit=" s", applies=at_scale)))
    out.append(_row(ours["hourly"]))
    if latency:
        out.append(_row(latency["nothing_new"]))
        out.append(_row(latency["hourly"], _verdict(latency["hourly"].seconds, AIM_HOURLY_LATENCY_S, at_most=True,
                                                    unit=" s", applies=at_scale)))
    scaled = {k: _scaled(p, n) for k, p in baseline.items()}
    for key in ("backfill", "nothing_new"):
        if key in baseline:
            out += [_row(baseline[key]), _row(scaled[key])]
    out += ["", "  wall s: extract + load inside the sync process (no marts, no checks; interpreter start and",
            "  imports left out on both sides). requests: as the sandbox counted them (OAuth included)."]
    out.append("")
    if "nothing_new" in scaled:
        ratio = scaled["nothing_new"].seconds / ours["nothing_new"].seconds
        out.append(f"  sync with nothing new, per-merchant (scaled) / ours = {scaled['nothing_new'].seconds:,.0f} s / "
                   f"{ours['nothing_new'].seconds:.1f} s = {ratio:.1f}×   "
                   + _verdict(ratio, AIM_BASELINE_RATIO, at_most=False, unit="×"))
        ratio = scaled["backfill"].seconds / ours["backfill"].seconds
        out.append(f"  backfill, per-merchant (scaled) / ours = {scaled['backfill'].seconds:,.0f} s / "
                   f"{ours['backfill'].seconds:.1f} s = {ratio:.1f}×   (no aim)")
    if memory_small is not None:
        big, small = ours["backfill"].peak_rss_mib or 0.0, memory_small.peak_rss_mib or 1.0
        out.append(f"  peak memory of the backfill: {memory_small.merchants:,} merchants {small:.0f} MiB, {n:,} merchants "
                   f"{big:.0f} MiB → {big / small:.2f}× for {n / memory_small.merchants:.0f}× the merchants   "
                   + _verdict(big / small, AIM_MEMORY_RATIO, at_most=True, unit="×"))
    if not at_scale:
        out.append(f"  (the aims in seconds are stated for {AIMS_AT:,} merchants: run with --merchants {AIMS_AT} to judge them)")
    return out


def cmd_bench_merchants(args: argparse.Namespace) -> int:
    """Run the whole benchmark and print its table."""
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    n = args.merchants
    if args.memory_merchants >= n:
        args.memory_merchants = max(1, n // 10)
    root = Path(tempfile.mkdtemp(prefix="instamojo-bench-merchants-"))
    try:
        say(f"instamojo-elt bench-merchants — {n:,} merchants, {args.days} days of history at "
            f"{args.payments_per_day:g} payments a day (+ their payouts, orders, products), {os.cpu_count()} CPUs, "
            f"{load_average()}. The machine may be shared: read the ratios, measured in this run.")
        with SandboxProcess(n, args.days, args.payments_per_day) as sb:
            say(f"  sandbox of {len(sb.merchants):,} merchants ready in {sb.ready_seconds:.1f} s")
            ours = measure_many(sb, root, say)
            baseline = measure_baseline(sb, root, min(args.baseline_sample, n), say) if args.baseline_sample else {}
            ours |= measure_hourly(sb, root, None, say)
            latency = {} if args.skip_latency else measure_hourly(sb, root, args.latency_ms / 1000, say)
        memory_small = measure_memory(args, root, say) if args.memory_merchants < n else None
        for line in render(args, ours, latency, baseline, memory_small):
            say(line)
        say(f"  at the end: {load_average()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `bench-merchants` command of `python -m pipelines`."""
    p = sub.add_parser("bench-merchants", help="measure a many-merchant sync against the per-merchant engine (not a test)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merchants", type=int, default=1000, help="merchants in the sandbox (default 1,000)")
    p.add_argument("--days", type=int, default=30, help="days of history (default 30)")
    p.add_argument("--payments-per-day", type=float, default=20.0, help="mean payments a merchant a day (default 20)")
    p.add_argument("--baseline-sample", type=int, default=50,
                   help="merchants the per-merchant engine syncs, scaled to --merchants (default 50; 0 = no baseline)")
    p.add_argument("--memory-merchants", type=int, default=100,
                   help="the smaller number of merchants for the memory comparison (default 100)")
    p.add_argument("--latency-ms", type=float, default=100.0, help="added to every request in the latency runs (default 100)")
    p.add_argument("--skip-latency", action="store_true", help="skip the runs with latency added")
    p.add_argument("--output", help="also write the figures to this file")
    p.set_defaults(func=cmd_bench_merchants)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker()
    else:
        from .cli import main

        sys.exit(main(["bench-merchants", *sys.argv[1:]]))
