"""Upgrading from the per-merchant pipelines of an earlier version: a project folder made by that
version's own code (taken from git history) keeps working with today's engine. Its cursors,
watch lists and follow-ups are taken over (no re-backfill, nothing re-read beyond the lookbacks),
a load package it left unfinished is loaded first, its single-file token store is moved into the
folder store, and its warehouse file becomes the working file."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import duckdb
import pytest

from instamojo_sandbox import SandboxConfig
from instamojo_sandbox.config import DEMO_APP
from tests.oauth_flow import obtain_tokens
from tests.source.truth import assert_warehouse_matches
from transforms.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
# the last commit whose sync ran one dlt pipeline per merchant
PER_MERCHANT_VERSION = "21b6bd9"


def earlier_version(into: Path) -> Path:
    """That version's code, exported from git into `into` (nothing of it is imported here)."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", PER_MERCHANT_VERSION, "sources", "pipelines",
                                  "transforms", "checks"], capture_output=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.fail(f"the repository's history must hold {PER_MERCHANT_VERSION} (a full clone): {exc}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def project_env(sb, folder: Path, code: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "PYTHONPATH"))}
    env.update({
        "SOURCES__INSTAMOJO__BASE_URL": sb.base_url,
        "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_APP.client_id,
        "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_APP.client_secret,
        "SOURCES__INSTAMOJO__MERCHANTS": ",".join(sb.merchants),
        # what that version shipped: one token file, one warehouse file the pipeline wrote itself
        "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": ".dlt/instamojo.tokens.json",
        "INSTAMOJO_ELT__DUCKDB_PATH": "data/instamojo.duckdb",
        "SOURCES__INSTAMOJO__PAGE_SIZE": str(sb.config.page_size),
    })
    if code is not None:
        env["PYTHONPATH"] = str(code)  # before the installed package: the earlier version runs
    return env


def test_a_folder_made_by_per_merchant_pipelines_keeps_working(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=71, profile="small", page_size=20))
    code = earlier_version(tmp_path / "earlier")
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    tokens = {m: obtain_tokens(sb, m)["refresh_token"] for m in sb.merchants}
    old = project_env(sb, project, code)
    for m, token in tokens.items():
        old[f"SOURCES__INSTAMOJO__REFRESH_TOKENS__{m.upper()}"] = token
    run = subprocess.run([sys.executable, "-m", "pipelines", "sync", "--no-transform", "--progress", "none"],
                         cwd=project, env=old, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (project / "data" / "pipelines" / f"instamojo_{sb.merchants[0]}" / "state.json").exists()
    assert (project / ".dlt" / "instamojo.tokens.json").exists()

    # the earlier version's run that extracted and normalized one merchant, then stopped
    sb.advance(days=1)
    interrupted = textwrap.dedent(f"""
        from pipelines.config import load_settings
        from pipelines.warehouse import loader_file_format, merchant_pipeline
        from sources.instamojo.source import instamojo_source
        s = load_settings()
        m = {sb.merchants[0]!r}
        p = merchant_pipeline(s, m)
        p.extract(instamojo_source(merchant=m, base_url=s.base_url, client_id=s.client_id,
                  client_secret=s.client_secret, refresh_token=s.refresh_tokens.get(m),
                  token_store_path=str(s.token_store_path)),
                  loader_file_format=loader_file_format(s))
        p.normalize()
        assert p.list_normalized_load_packages()
    """)
    stop = subprocess.run([sys.executable, "-c", interrupted], cwd=project, env=old, capture_output=True, text=True,
                          timeout=600)
    assert stop.returncode == 0, stop.stderr[-3000:]
    waiting = project / "data" / "pipelines" / f"instamojo_{sb.merchants[0]}" / "load" / "normalized"
    [unfinished_load] = [p.name for p in waiting.iterdir()]

    # today's engine, same folder, same configuration (the tokens now only in the old token file)
    sb.advance(days=1)
    sb.reset_stats()
    new = project_env(sb, project, None)
    run = subprocess.run([sys.executable, "-m", "pipelines", "sync", "--no-transform", "--progress", "none"],
                         cwd=project, env=new, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # an incremental run, not a backfill: the payments listing stopped at the taken-over cursors
    # (fewer requests, follow-ups of new payouts included, than one pass over every page)
    for merchant in sb.merchants:
        pages = -(-len(sb.truth(merchant, "payments")) // sb.config.page_size)
        asked = sb.request_count(merchant=merchant, endpoint="payments")
        assert asked < pages, (merchant, asked, pages)
    # the package the earlier version left unfinished was loaded
    with duckdb.connect(str(project / "data" / "pipelines" / "work.duckdb"), read_only=True) as con:
        loads = {r[0] for r in con.execute("SELECT load_id FROM instamojo_raw._dlt_loads WHERE status = 0").fetchall()}
    assert unfinished_load in loads
    # the earlier pipelines' folders are retired; the token store is the folder now
    pipelines = project / "data" / "pipelines"
    assert not (pipelines / f"instamojo_{sb.merchants[0]}").exists()
    assert (pipelines / ".upgraded" / f"instamojo_{sb.merchants[0]}").exists()
    assert not (project / ".dlt" / "instamojo.tokens.json").exists()
    assert sorted(p.stem for p in (project / ".dlt" / "instamojo.tokens").glob("*.json")) == sorted(sb.merchants)
    # a deep run once (refunds land weeks after a payment): everything is there, exactly once,
    # including what the interrupted run had extracted
    run = subprocess.run([sys.executable, "-m", "pipelines", "sync", "--no-transform", "--progress", "none",
                          "--lookback-days", "90"], cwd=project, env=new, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wh = Warehouse.duckdb(str(pipelines / "work.duckdb"))
    try:
        assert_warehouse_matches(wh, "instamojo_raw", sb, sb.merchants,
                                 tables=["payments", "payouts", "orders", "order_payments", "order_items"])
        dupes = wh.query("SELECT count(*) - count(DISTINCT (merchant, id)) FROM instamojo_raw.payments")[1][0][0]
        assert dupes == 0
    finally:
        wh.close()
    with duckdb.connect(str(project / "data" / "instamojo.duckdb"), read_only=True) as con:  # the analysts' copy
        assert con.execute("SELECT count(*) FROM instamojo.instamojo_raw.payments").fetchone()[0] == sum(
            len(sb.truth(m, "payments")) for m in sb.merchants)
