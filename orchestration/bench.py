"""Sharding through Dagster, measured (a script, not a test): `python -m orchestration.bench`.

1. Backfill N merchants into Postgres through Dagster: 1 shard, then 2 shards in parallel
   processes (each run its own `dagster job execute` process, as a deployment's run launcher
   starts them). A backfill is CPU-bound (normalizing, loading), so 2 shards should gain on a
   2-core machine. The figures include each run's process start and code-location load.
2. The hourly sync (the sandbox's clock an hour on) with 100 ms added to every request, 1 shard
   against 4, under the same app-wide rate limit: the limit, not the shards, should set the pace.
   Requests per second reached are printed against the limit.

Everything goes into fresh Postgres schemas (dropped afterwards) and temporary folders; the
sandbox runs in its own process. The sandbox's demo app and tokens from its admin API: nothing
secret. Figures vary with the machine's load: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from pipelines.demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, running_sandbox

from .shards import shard_keys

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
DEFAULT_DSN = "postgresql://postgres:postgres@127.0.0.1:5432/test"


class Deployment:
    """A DAGSTER_HOME, fresh schemas and the environment of one configuration."""

    def __init__(self, base_url: str, merchants: list[str], tokens: dict[str, str], shards: int, dsn: str,
                 app_limit: float | None, root: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.shards, self.dsn, self.root = shards, dsn, root
        self.raw, self.marts = f"bench{suffix}_raw", f"bench{suffix}_marts"
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (self.home / "run.json").write_text(json.dumps({"execution": {"config": {"in_process": {}}}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "ORCHESTRATION__"))}
        env.update({
            "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(self.home),
            "SOURCES__INSTAMOJO__BASE_URL": base_url, "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_CLIENT_ID,
            "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "SOURCES__INSTAMOJO__MERCHANTS": ",".join(merchants),
            "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": str(root / "tokens"),
            "INSTAMOJO_ELT__DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": dsn,
            "INSTAMOJO_ELT__RAW_DATASET": self.raw, "INSTAMOJO_ELT__MARTS_DATASET": self.marts,
            "INSTAMOJO_ELT__PIPELINES_DIR": str(root / "pipelines"),
            "ORCHESTRATION__SHARDS": str(shards), "ORCHESTRATION__MAX_PARALLEL_SHARDS": str(shards),
        })
        if app_limit:
            env["SOURCES__INSTAMOJO__APP_MAX_REQUESTS_PER_SECOND"] = str(app_limit)
        for merchant, token in tokens.items():
            env[f"SOURCES__INSTAMOJO__REFRESH_TOKENS__{merchant.upper()}"] = token
        self.env = env
        import dagster as dg

        dg.DagsterInstance.from_config(str(self.home)).get_runs(limit=1)  # storage made before parallel runs

    def sync(self) -> float:
        """Every shard's run at once, each in its own process; seconds until the last is done."""
        started = time.perf_counter()
        procs = [subprocess.Popen([DAGSTER, "job", "execute", "-m", "orchestration.definitions", "-j", "sync_shards",
                                   "-c", str(self.home / "run.json"), "--tags", json.dumps({"dagster/partition": k})],
                                  cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k in shard_keys(self.shards)]
        try:
            outputs = [p.communicate()[0] for p in procs]
        except BaseException:  # interrupted: the runs stop with the bench
            for p in procs:
                p.terminate()
            raise
        seconds = time.perf_counter() - started
        for proc, output in zip(procs, outputs, strict=True):
            if proc.returncode != 0:
                raise RuntimeError(f"a shard's run failed:\n{output[-3000:]}")
        return seconds

    def drop(self) -> None:
        import psycopg2

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                           (f"{self.raw.removesuffix('_raw')}%",))
            for (schema,) in cursor.fetchall():
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.close()


def _tokens(base_url: str) -> tuple[list[str], dict[str, str]]:
    answer = requests.post(f"{base_url}/_sandbox/tokens", json={"all": True}, timeout=60)
    answer.raise_for_status()
    rows = answer.json()
    return [r["merchant"] for r in rows], {r["merchant"]: r["refresh_token"] for r in rows}


def _admin(base_url: str, method: str, path: str, body: dict | None = None) -> dict:
    answer = requests.request(method, f"{base_url}/_sandbox/{path}", json=body, timeout=60)
    answer.raise_for_status()
    return answer.json()


def _requests_since(base_url: str, since: int) -> tuple[int, float]:
    """API requests the sandbox logged after `since`, and the seconds from the first to the last
    (the sync's own pace, without the runs' process start and code-location load)."""
    times: list[float] = []
    while True:
        page = _admin(base_url, "GET", f"requests?since={since}&limit=10000")
        times += [r["t"] for r in page["requests"] if r.get("endpoint") not in (None, "token")]
        since = page["next"]
        if not page.get("more"):
            break
    return len(times), (max(times) - min(times)) if len(times) > 1 else float("nan")


def _backfill(base_url: str, merchants: list[str], tokens: dict[str, str], args: argparse.Namespace, root: Path,
              made: list[Deployment]) -> None:
    """Every merchant's backfill with 1 shard, then with 2 shards in parallel processes."""
    backfill: dict[int, float] = {}
    for shards in (1, 2):
        made.append(Deployment(base_url, merchants, tokens, shards, args.dsn, None, root / f"backfill{shards}"))
        backfill[shards] = made[-1].sync()
        print(f"backfill, {shards} shard(s) in parallel processes: {backfill[shards]:.1f} s", flush=True)
    print(f"  2 shards vs 1: {backfill[1] / backfill[2]:.2f}x faster")


def _hourly(base_url: str, merchants: list[str], tokens: dict[str, str], args: argparse.Namespace, root: Path,
            made: list[Deployment]) -> None:
    """After a backfill (not timed), the hourly sync with 100 ms per request: 1 shard, then 4."""
    hourly: dict[int, tuple[float, float]] = {}
    for shards in (1, 4):
        deployment = Deployment(base_url, merchants, tokens, shards, args.dsn, None, root / f"hourly{shards}")
        made.append(deployment)
        _admin(base_url, "PATCH", "config", {"latency": 0.0})
        deployment.sync()  # the backfill this deployment's hourly run follows (not timed, no limit)
        deployment.env["SOURCES__INSTAMOJO__APP_MAX_REQUESTS_PER_SECOND"] = str(args.app_limit)
        _admin(base_url, "POST", "clock/advance", {"hours": 1})
        _admin(base_url, "PATCH", "config", {"latency": 0.1})
        _admin(base_url, "DELETE", "requests")  # the log holds this run's requests only
        seconds = deployment.sync()
        n, span = _requests_since(base_url, 0)
        hourly[shards] = (seconds, span)
        print(f"hourly sync, 100 ms per request, {shards} shard(s): {seconds:.1f} s ({span:.1f} s from the "
              f"first request to the last), {n} requests, {n / span:.1f} requests/s against the app "
              f"limit of {args.app_limit:g}/s", flush=True)
    print(f"  4 shards vs 1: {hourly[1][0] / hourly[4][0]:.2f}x end to end, "
          f"{hourly[1][1] / hourly[4][1]:.2f}x between the first request and the last")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--days", type=int, default=10, help="days of history per merchant (default 10)")
    parser.add_argument("--payments-per-day", type=float, default=12)
    parser.add_argument("--app-limit", type=float, default=20.0, help="app-wide requests/s of the hourly run")
    parser.add_argument("--only", choices=("backfill", "hourly"), help="run one of the two measurements")
    parser.add_argument("--dsn", default=os.environ.get("DESTINATION__POSTGRES__CREDENTIALS", DEFAULT_DSN))
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="instamojo-dagster-bench-"))
    made: list[Deployment] = []
    sandbox_args = ["--size", "small", "--merchants", str(args.merchants), "--days", str(args.days),
                    "--payments-per-day", str(args.payments_per_day)]
    try:
        with running_sandbox(*sandbox_args) as base_url:
            merchants, tokens = _tokens(base_url)
            print(f"{len(merchants)} merchants, {args.days} days at {args.payments_per_day:g} payments/day each")
            if args.only != "hourly":
                _backfill(base_url, merchants, tokens, args, root, made)
            if args.only != "backfill":
                _hourly(base_url, merchants, tokens, args, root, made)
    finally:
        for deployment in made:
            deployment.drop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
