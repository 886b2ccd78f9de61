"""A sync killed (SIGKILL) at random points, many times, then one normal run: the warehouse equals
the sandbox's truth exactly, on DuckDB and on Postgres. Half the kills land at a random moment of
the run, half just after its load began (a normalized package waiting, some of its jobs done, the
merge not yet), the point where pipelines sharing one staging dataset used to lose rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from instamojo_sandbox import SandboxConfig
from instamojo_sandbox.config import DEMO_APP
from tests.oauth_flow import obtain_tokens
from tests.pipeline_helpers import POSTGRES_DSN
from tests.source.truth import assert_warehouse_matches
from transforms.warehouse import Warehouse

KILLS = 6


def _env(sb, tmp_path: Path, destination: str, raw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "DESTINATION__"))}
    env.update({
        "SOURCES__INSTAMOJO__BASE_URL": sb.base_url,
        "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_APP.client_id,
        "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_APP.client_secret,
        "SOURCES__INSTAMOJO__MERCHANTS": ",".join(sb.merchants),
        "SOURCES__INSTAMOJO__PAGE_SIZE": str(sb.config.page_size),
        # refunds land weeks after a payment: a lookback over the whole history makes "equal to
        # the truth" exact (shorter lookbacks are tested elsewhere)
        "SOURCES__INSTAMOJO__PAYMENTS_LOOKBACK_DAYS": "90",
        "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": str(tmp_path / "tokens"),
        "INSTAMOJO_ELT__DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "INSTAMOJO_ELT__PIPELINES_DIR": str(tmp_path / "pipelines"),
        "INSTAMOJO_ELT__DESTINATION": destination,
        "INSTAMOJO_ELT__RAW_DATASET": raw,
        "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_DSN,
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.05",
    })
    for m in sb.merchants:
        env[f"SOURCES__INSTAMOJO__REFRESH_TOKENS__{m.upper()}"] = obtain_tokens(sb, m)["refresh_token"]
    return env


def _sync(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines", "sync", "--no-transform", "--progress", "none"],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _load_started(pipelines: Path) -> bool:
    """A normalized package is waiting to be (or being) loaded."""
    loading = pipelines / "instamojo__sync" / "load" / "normalized"
    return loading.is_dir() and any(loading.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kills_at_random_points_then_one_normal_run_give_exactly_the_truth(sandbox_factory, tmp_path, destination):
    sb = sandbox_factory(SandboxConfig(seed=51, profile="small", merchants=3, page_size=20))
    raw = f"k{uuid.uuid4().hex[:8]}_raw" if destination == "postgres" else "instamojo_raw"
    env = _env(sb, tmp_path, destination, raw)
    rng = random.Random(51)
    try:
        started = time.monotonic()
        assert _sync(env, tmp_path).wait(timeout=300) == 0
        normal = time.monotonic() - started
        sb.advance(hours=72)
        outcomes = []
        for attempt in range(KILLS):
            proc = _sync(env, tmp_path)
            if attempt % 2:  # just after the load began
                deadline = time.monotonic() + 120
                while proc.poll() is None and not _load_started(tmp_path / "pipelines") and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0, 0.05))
            else:  # anywhere in the run
                time.sleep(rng.uniform(0.2, normal))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            outcomes.append(proc.wait(timeout=60))
            sb.advance(hours=rng.choice([0, 6, 24]))
        assert outcomes.count(-signal.SIGKILL) >= KILLS // 2, outcomes  # most runs really were killed
        sb.advance(hours=12)  # the normal run must bring what happened since, not only finish what was left
        assert _sync(env, tmp_path).wait(timeout=300) == 0
        wh = (Warehouse.postgres(POSTGRES_DSN) if destination == "postgres"
              else Warehouse.duckdb(str(tmp_path / "pipelines" / "work.duckdb")))
        try:
            assert_warehouse_matches(wh, raw, sb, sb.merchants)
        finally:
            wh.close()
    finally:
        if destination == "postgres":
            from pipelines.config import Settings
            from tests.pipeline_helpers import drop_postgres_schemas

            drop_postgres_schemas(Settings(base_url="http://x", client_id=None, client_secret=None, merchants=(),
                                           refresh_tokens={}, token_store_path=tmp_path / "t", destination="postgres",
                                           postgres_credentials=POSTGRES_DSN, raw_dataset=raw, marts_dataset=raw))
