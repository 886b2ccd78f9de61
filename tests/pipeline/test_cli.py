"""The command line as a scheduled job runs it: a real process, configured by environment
variables, against the sandbox over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instamojo_sandbox import SandboxConfig
from instamojo_sandbox.config import DEMO_APP
from tests.oauth_flow import obtain_tokens

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def sync_env(sb, tmp_path: Path, merchants: list[str]) -> dict[str, str]:
    """A scheduled job's configuration: everything in environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__"))}
    env.update({
        "SOURCES__INSTAMOJO__BASE_URL": sb.base_url,
        "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_APP.client_id,
        "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_APP.client_secret,
        "SOURCES__INSTAMOJO__MERCHANTS": ",".join(merchants),
        "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": str(tmp_path / "tokens.json"),
        "INSTAMOJO_ELT__DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "INSTAMOJO_ELT__PIPELINES_DIR": str(tmp_path / "pipelines"),
        "TRANSFORMS__AS_OF": "latest_activity",
        "CHECKS__FRESHNESS_MAX_AGE_HOURS": "0",
    })
    for m in merchants:
        env[f"SOURCES__INSTAMOJO__REFRESH_TOKENS__{m.upper()}"] = obtain_tokens(sb, m)["refresh_token"]
    return env


def test_help_explains_and_does_not_import_great_expectations():
    proc = run_cli("sync", "--help")
    assert proc.returncode == 0
    for words in ("--merchants", "--resources", "--backfill-from", "--destination", "--progress"):
        assert words in proc.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, pipelines.cli, sources.instamojo.source; "
                            "print('great_expectations' in sys.modules)"], cwd=ROOT, capture_output=True, text=True)
    assert probe.stdout.strip() == "False", probe.stderr


def test_sync_without_credentials_says_how_to_configure_and_about_the_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__"))}
    env["SOURCES__INSTAMOJO__TOKEN_STORE_PATH"] = str(tmp_path / "none.json")
    proc = run_cli("sync", env=env, cwd=tmp_path)
    assert proc.returncode == 2
    for hint in ("client_id", "client_secret", ".dlt/secrets.toml", "make authorize", "make demo"):
        assert hint in proc.stderr, proc.stderr


def test_sync_runs_end_to_end_and_prints_a_summary(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=21, profile="small", page_size=50))
    env = sync_env(sb, tmp_path, sb.merchants)
    proc = run_cli("sync", "--progress", "none", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 merchant(s), 2 ok, 0 failed" in out
    for merchant in sb.merchants:
        assert merchant in out
    for table in ("payments", "payouts", "orders", "order_items", "cursor now at"):
        assert table in out
    assert "Transforms: marts rebuilt" in out and "checks PASSED" in out
    for secret in (DEMO_APP.client_secret, *[v for k, v in env.items() if "REFRESH_TOKENS" in k]):
        assert secret not in out and secret not in proc.stderr


def test_a_second_sync_refuses_at_once_and_the_first_completes_untouched(sandbox_factory, tmp_path):
    # 30 ms per request keeps the first sync busy for a while
    sb = sandbox_factory(SandboxConfig(seed=22, profile="small", page_size=10, latency=0.03))
    env = sync_env(sb, tmp_path, sb.merchants[:1])
    first = subprocess.Popen([sys.executable, "-m", "pipelines", "sync", "--no-transform", "--progress", "none"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "pipelines" / "sync.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = run_cli("sync", "--no-transform", env=env, cwd=tmp_path)
        assert second.returncode == 3
        assert time.monotonic() - started < 30  # refused at once, not after waiting for the first
        assert "another sync is running" in second.stderr and f"pid {first.pid}" in second.stderr
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out + err
    finally:
        first.kill()
    from tests.source.truth import assert_warehouse_matches
    from transforms.warehouse import Warehouse

    wh = Warehouse.duckdb(str(tmp_path / "warehouse.duckdb"))  # the copy published for analysts
    assert_warehouse_matches(wh, "instamojo_raw", sb, sb.merchants[:1], tables=["payments", "payouts", "orders"])


def test_a_failing_merchant_makes_the_run_exit_1_and_says_why(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=23, profile="small", page_size=50))
    env = sync_env(sb, tmp_path, sb.merchants)
    sb.revoke(merchant=sb.merchants[1])
    proc = run_cli("sync", "--progress", "none", env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 ok, 1 failed" in proc.stdout
    assert f"FAILED merchant '{sb.merchants[1]}'" in proc.stdout and "make authorize" in proc.stdout


def test_query_prints_a_table(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=24, profile="small", page_size=50))
    env = sync_env(sb, tmp_path, sb.merchants[:1])
    assert run_cli("sync", "--no-transform", "--resources", "payouts", env=env, cwd=tmp_path).returncode == 0
    proc = run_cli("query", "SELECT count(*) AS payouts, sum(paid_amount) AS paid FROM instamojo_raw.payouts",
                   env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    total = sum(__import__("decimal").Decimal(p["paid_amount"]) for p in sb.truth(sb.merchants[0], "payouts"))
    assert f"{total:,.2f}" in proc.stdout and "(1 row)" in proc.stdout


@pytest.mark.slow
def test_make_demo_runs_the_whole_job(tmp_path):
    """`make demo`'s command, in an empty folder: it writes only data/demo.duckdb and data/demo/
    (a real warehouse beside it is never touched)."""
    proc = run_cli("demo", "--size", "small", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "data" / "demo.duckdb").exists()
    assert (tmp_path / "data" / "demo" / "report" / "index.html").exists()
    written = {p.name for p in tmp_path.iterdir()} | {p.name for p in (tmp_path / "data").iterdir()}
    assert written <= {"data", "demo.duckdb", "demo"}, sorted(written)
    assert "checks PASSED" in proc.stdout and "demo finished" in proc.stdout
    assert "python -m pipelines query" in proc.stdout
    assert "sandbox-demo-secret" not in proc.stdout
