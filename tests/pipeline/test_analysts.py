"""An analyst's open DuckDB connection and a sync, side by side, in real processes: the analyst's
connection never fails a sync, and a sync never fails the analyst's queries. `check` and `query`
read what analysts read; `transform` refuses clearly beside a running sync."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import duckdb

from instamojo_sandbox import SandboxConfig
from tests.pipeline.test_project_folder import ROOT, cli, new_project


def _analyst(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_an_open_analyst_connection_never_breaks_a_sync(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=41, profile="small", page_size=20))
    env = new_project(tmp_path, sb, sb.merchants)
    assert cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env).returncode == 0
    published = tmp_path / "data" / "warehouse.duckdb"
    # a notebook holding a read-only connection open for the whole next sync (the DuckDB CLI
    # opened read-write holds a stricter lock still: that too)
    for read_only in (True, False):
        holder = _analyst(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(published)!r}, read_only={read_only})
            before = con.execute("SELECT count(*) FROM instamojo_raw.payments").fetchone()[0]
            print(before, flush=True)
            sys.stdin = None
            time.sleep(120)
        """)
        try:
            before = int(holder.stdout.readline())
            sb.advance(hours=12)
            proc = cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
            assert holder.poll() is None  # the analyst's session is still there
        finally:
            holder.kill()
            holder.wait()
        with duckdb.connect(str(published), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM instamojo_raw.payments").fetchone()[0] > before


def test_a_sync_never_fails_an_analysts_queries(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=42, profile="small", page_size=10, latency=0.01))
    env = new_project(tmp_path, sb, sb.merchants)
    assert cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env).returncode == 0
    published = tmp_path / "data" / "warehouse.duckdb"
    # a dashboard that opens a fresh connection and queries the marts, over and over
    reader = _analyst(f"""
        import duckdb, time
        ok = failed = 0
        errors = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                with duckdb.connect({str(published)!r}, read_only=True) as con:
                    con.execute("SELECT count(*), sum(paid_amount) FROM instamojo.payout_reconciliation").fetchall()
                    con.execute("SELECT count(*) FROM instamojo_raw.payments").fetchall()
                ok += 1
            except Exception as exc:
                failed += 1
                errors.append(repr(exc)[:200])
            if ok and __import__("os").path.exists({str(tmp_path / "stop")!r}):
                break
        print(ok, failed, errors[:3], flush=True)
    """)
    sb.advance(days=1)
    sync = subprocess.Popen([sys.executable, "-m", "pipelines", "sync", "--progress", "none", "--no-check"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = sync.communicate(timeout=600)
    (tmp_path / "stop").write_text("")
    reads, failed, errors = reader.communicate(timeout=120)[0].split(" ", 2)
    assert sync.returncode == 0, out[-3000:] + err[-2000:]
    assert int(failed) == 0, errors
    assert int(reads) > 10


def test_check_and_query_run_beside_a_sync_and_transform_refuses_clearly(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=44, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    assert cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env).returncode == 0
    # a sync holding the lock (and the working file) for as long as this test needs
    holder = _analyst(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pipelines.lock import SyncLock
        import duckdb
        with SyncLock(__import__("pathlib").Path({str(tmp_path / "data" / "pipelines" / "sync.lock")!r})):
            con = duckdb.connect({str(tmp_path / "data" / "pipelines" / "work.duckdb")!r})
            print("held", flush=True)
            time.sleep(300)
    """)
    try:
        assert holder.stdout.readline().strip() == "held"
        # all four at once, as analysts and a cron job would meet them
        with ThreadPoolExecutor(4) as pool:
            check, query, transform, report = pool.map(lambda args: cli(tmp_path, *args, env=env), [
                ("check",), ("query", "SELECT count(*) AS n FROM instamojo.payments_reconciled"), ("transform",),
                ("report", "--output", str(tmp_path / "report" / "index.html"))])
    finally:
        holder.kill()
        holder.wait()
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-1000:]
    assert query.returncode == 0 and "(1 row)" in query.stdout, query.stdout + query.stderr
    assert report.returncode == 0, report.stdout + report.stderr
    assert transform.returncode == 3 and "another sync is running" in transform.stderr, transform.stderr


def test_query_reads_the_warehouse_and_nothing_else(sandbox_factory, tmp_path):
    from pipelines.config import Settings
    from pipelines.query import run_query

    sb = sandbox_factory(SandboxConfig(seed=43, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    assert cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env).returncode == 0
    token_file = next((tmp_path / ".dlt" / "tokens").glob("*.json"))
    settings = Settings(base_url="http://unused", client_id=None, client_secret=None, merchants=(), refresh_tokens={},
                        token_store_path=tmp_path / ".dlt" / "tokens", duckdb_path=tmp_path / "data" / "warehouse.duckdb",
                        pipelines_dir=tmp_path / "data" / "pipelines")
    for sql in (f"SELECT content FROM read_text('{token_file}')",
                f"SELECT * FROM read_json_auto('{token_file}')",
                f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
                f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
                "SET enable_external_access = true",
                "DROP TABLE instamojo_raw.payments",
                "DELETE FROM instamojo_raw.payments"):
        try:
            out = run_query(settings, sql)
        except duckdb.Error as exc:
            out = str(exc)
        else:
            raise AssertionError(f"{sql} ran: {out}")
        assert "refresh_token" not in out
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    # the command itself: the user's SQL error is a message, exit 1, no traceback
    refused = cli(tmp_path, "query", f"SELECT content FROM read_text('{token_file}')", env=env)
    assert refused.returncode == 1 and "Permission Error" in refused.stdout and "Traceback" not in refused.stderr
    assert "refresh_token" not in refused.stdout + refused.stderr
    assert "(1 row)" in run_query(settings, "SELECT count(*) AS n FROM instamojo_raw.payments")
