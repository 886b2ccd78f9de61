"""A project folder as a new user meets it: the shipped `.dlt/config.toml` untouched but for
credentials, `make sync` run in that folder, a copied folder, bad settings, a read-only token
store. Real processes against the sandbox over HTTP, real DuckDB files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from instamojo_sandbox import SandboxConfig
from instamojo_sandbox.config import DEMO_APP
from tests.oauth_flow import obtain_tokens

ROOT = Path(__file__).resolve().parents[2]


def new_project(folder: Path, sb, merchants) -> dict[str, str]:
    """A project folder holding the repository's own `.dlt/config.toml` (a byte-for-byte copy)
    and a `.dlt/secrets.toml` with the app's client and each merchant's refresh token, as the
    README tells a user to write it. Returns the environment: only the base URL is set there."""
    (folder / ".dlt").mkdir(parents=True)
    shutil.copyfile(ROOT / ".dlt" / "config.toml", folder / ".dlt" / "config.toml")
    tokens = "\n".join(f'{m} = "{obtain_tokens(sb, m)["refresh_token"]}"' for m in merchants)
    (folder / ".dlt" / "secrets.toml").write_text(
        f'[sources.instamojo]\nclient_id = "{DEMO_APP.client_id}"\nclient_secret = "{DEMO_APP.client_secret}"\n\n'
        f"[sources.instamojo.refresh_tokens]\n{tokens}\n"
    )
    # a user's shell: nothing of this test run's own configuration, nor what an outer `make test`
    # exports to its children (ARGS, MERCHANT, Q, make's own flags)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "TRANSFORMS__", "CHECKS__", "DESTINATION__"))
           and k not in ("ARGS", "MERCHANT", "Q", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["SOURCES__INSTAMOJO__BASE_URL"] = sb.base_url
    # the sandbox's data is dated in its own (past) clock: judge "overdue" and freshness by it
    env["TRANSFORMS__AS_OF"] = "latest_activity"
    env["CHECKS__FRESHNESS_MAX_AGE_HOURS"] = "0"
    return env


def cli(folder: Path, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=timeout)


def make(folder: Path, target: str, env: dict[str, str], **variables: str) -> subprocess.CompletedProcess:
    """`make <target>` in `folder`, with the repository's Makefile and virtualenv."""
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        if not (folder / name).exists():
            shutil.copy2(ROOT / name, folder / name)  # copy2 keeps the mtimes: the venv stays up to date
    if not (folder / ".venv").exists():
        (folder / ".venv").symlink_to(ROOT / ".venv")
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(["make", "--no-print-directory", "-C", str(folder), target, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_make_sync_works_with_the_shipped_configuration(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=31, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants)
    proc = make(tmp_path, "sync", env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "Transforms FAILED" not in proc.stdout and "checks PASSED" in proc.stdout
    published = tmp_path / "data" / "warehouse.duckdb"
    assert rows(published, "SELECT count(DISTINCT merchant) FROM instamojo.payout_reconciliation") == [(2,)]
    want = sum(len(sb.truth(m, "payments")) for m in sb.merchants)
    assert rows(published, "SELECT count(*) FROM instamojo_raw.payments") == [(want,)]


@pytest.mark.parametrize("file_name", ["instamojo.duckdb", "instamojo_raw.duckdb", "my warehouse.duckdb"])
def test_any_duckdb_file_name_works_even_one_named_like_a_dataset(sandbox_factory, tmp_path, file_name):
    sb = sandbox_factory(SandboxConfig(seed=32, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    env["INSTAMOJO_ELT__DUCKDB_PATH"] = f"data/{file_name}"
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "Transforms FAILED" not in proc.stdout and "checks PASSED" in proc.stdout
    query = cli(tmp_path, "query", "SELECT count(*) AS n FROM instamojo.payments_reconciled", env=env)
    assert query.returncode == 0 and "(1 row)" in query.stdout, query.stdout + query.stderr


@pytest.mark.timeout(600)
def test_a_copied_project_folder_reads_and_writes_only_its_own_files(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=33, profile="small", page_size=50))
    a, b = tmp_path / "a", tmp_path / "b"
    env = new_project(a, sb, sb.merchants)
    assert cli(a, "sync", "--progress", "none", "--no-check", env=env).returncode == 0
    shutil.copytree(a, b, symlinks=True)
    count = "SELECT count(*) FROM instamojo_raw.payments"
    a_files = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    a_payments = rows(a / "data" / "warehouse.duckdb", count)

    sb.advance(days=1)
    proc = cli(b, "sync", "--progress", "none", "--no-check", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert rows(b / "data" / "warehouse.duckdb", count)[0][0] > a_payments[0][0]
    assert rows(a / "data" / "warehouse.duckdb", count) == a_payments
    # nothing under the first folder was written by the second folder's run
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()} == a_files

    # `check` in the copy judges the copy: a duplicated payment there fails it, and only there
    published = b / "data" / "warehouse.duckdb"
    with duckdb.connect(str(published)) as con:
        con.execute("INSERT INTO instamojo_raw.payments SELECT * FROM instamojo_raw.payments LIMIT 1")
    assert cli(b, "check", env=env).returncode == 1
    assert cli(a, "check", env=env).returncode == 0
    merchants = cli(b, "merchants", env=env)
    assert merchants.returncode == 0 and str(b / ".dlt" / "tokens") in merchants.stdout


@pytest.mark.parametrize("variable, value, problem", [
    ("SOURCES__INSTAMOJO__PAYMENTS_LOOKBACK_DAYS", "-1", "at least 0"),
    ("SOURCES__INSTAMOJO__ORDERS_LOOKBACK_DAYS", "-0.5", "at least 0"),
    ("SOURCES__INSTAMOJO__PAYOUTS_LOOKBACK_DAYS", "nan", "a number"),
    ("SOURCES__INSTAMOJO__PRODUCTS_LOOKBACK_DAYS", "inf", "a number"),
    ("SOURCES__INSTAMOJO__PAGE_CONCURRENCY", "0", "an integer of at least 1"),
    ("SOURCES__INSTAMOJO__MERCHANT_CONCURRENCY", "2.5", "an integer"),
    ("SOURCES__INSTAMOJO__APP_MAX_REQUESTS_PER_SECOND", "0", "greater than 0"),
    ("SOURCES__INSTAMOJO__MAX_REQUESTS_PER_SECOND", "-3", "greater than 0"),
    ("SOURCES__INSTAMOJO__BATCH_ROWS", "0", "at least 1"),
    ("SOURCES__INSTAMOJO__PAGE_SIZE", "501", "at most 500"),
    ("INSTAMOJO_ELT__DESTINATION", "bigquery", "one of duckdb, postgres"),
])
def test_a_bad_setting_is_refused_naming_the_key_and_its_source(sandbox_factory, tmp_path, variable, value, problem):
    sb = sandbox_factory(SandboxConfig(seed=34, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    env[variable] = value
    sb.reset_stats()
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    key = variable.lower().replace("__", ".")
    assert key in proc.stderr and f"environment variable {variable}" in proc.stderr and problem in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sb.request_count() == 0  # refused before any request


def test_a_bad_setting_in_the_config_file_names_the_file(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=34, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    config = tmp_path / ".dlt" / "config.toml"
    config.write_text(config.read_text().replace("payments_lookback_days = 1", "payments_lookback_days = -1"))
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2
    assert "sources.instamojo.payments_lookback_days = -1" in proc.stderr and str(config) in proc.stderr


def test_a_secrets_file_that_does_not_parse_names_the_file_and_line(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=35, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    env["SOURCES__INSTAMOJO__CLIENT_ID"] = DEMO_APP.client_id  # set elsewhere: still not read past the broken file
    secrets = tmp_path / ".dlt" / "secrets.toml"
    secrets.write_text(secrets.read_text().replace('client_secret = "', 'client_secret = "unterminated\n#'))
    sb.reset_stats()
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "secrets.toml" in proc.stderr and "line" in proc.stderr
    assert "Missing" not in proc.stderr and "Traceback" not in proc.stderr
    assert sb.request_count() == 0


def test_a_read_only_token_store_stops_the_run_before_any_refresh_token_is_spent(
        sandbox_factory, tmp_path, read_only_folder):
    sb = sandbox_factory(SandboxConfig(seed=36, profile="small", page_size=50, rotate_refresh_tokens=True))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    store = read_only_folder(tmp_path / ".dlt" / "tokens")
    sb.reset_stats()
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"the token store {store} is not writable" in proc.stderr and "Read-only file system" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sb.request_count(endpoint="oauth_token") == 0  # the configured refresh token is still good


@pytest.mark.parametrize("target, variables", [
    ("authorize", {"MERCHANT": 'x"; touch pwned; echo "'}),
    ("authorize", {"MERCHANT": "$$(touch pwned)"}),
    ("authorize", {"MERCHANT": "$(shell touch pwned)"}),
    ("query", {"Q": 'SELECT 1"; touch pwned; echo "'}),
    ("query", {"Q": "SELECT '$$(touch pwned)'"}),
    ("sync", {"ARGS": "--merchants x; touch pwned"}),
    ("sync", {"ARGS": "$(shell touch pwned)"}),
    ("merchants", {"ARGS": "`touch pwned`"}),
])
def test_values_given_to_make_are_never_run(sandbox_factory, tmp_path, target, variables):
    sb = sandbox_factory(SandboxConfig(seed=37, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    proc = make(tmp_path, target, env, **variables)
    assert not (tmp_path / "pwned").exists(), proc.stdout + proc.stderr
    assert proc.returncode != 0  # a bad name, bad SQL or bad arguments: refused, never run
    assert "Traceback" not in proc.stderr


def test_a_base_url_with_a_path_is_a_configuration_error(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=38, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    env["SOURCES__INSTAMOJO__BASE_URL"] = sb.base_url + "/v2/"
    sb.reset_stats()
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2 and "sources.instamojo.base_url" in proc.stderr and "no path" in proc.stderr
    assert "Traceback" not in proc.stderr and sb.request_count() == 0


def test_a_corrupt_token_file_and_a_read_only_data_folder_are_named(sandbox_factory, tmp_path, read_only_folder):
    sb = sandbox_factory(SandboxConfig(seed=39, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    tokens = tmp_path / ".dlt" / "tokens"
    tokens.mkdir()
    (tokens / f"{sb.merchants[0]}.json").write_text('{"refresh_token": "cut off')
    for command in (("sync", "--progress", "none"), ("merchants",)):
        proc = cli(tmp_path, *command, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{sb.merchants[0]}.json is not valid" in proc.stderr and "Traceback" not in proc.stderr
    (tokens / f"{sb.merchants[0]}.json").unlink()
    data = read_only_folder(tmp_path / "data")
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(data) in proc.stderr and "not writable" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.postgres
def test_a_postgres_dsn_without_a_password_works_with_trust_authentication(sandbox_factory, tmp_path):
    import uuid

    sb = sandbox_factory(SandboxConfig(seed=40, profile="small", page_size=50))
    env = new_project(tmp_path, sb, sb.merchants[:1])
    raw = f"p{uuid.uuid4().hex[:8]}_raw"
    env.update({"INSTAMOJO_ELT__DESTINATION": "postgres", "INSTAMOJO_ELT__RAW_DATASET": raw,
                "INSTAMOJO_ELT__MARTS_DATASET": raw.replace("_raw", "_marts"),
                "DESTINATION__POSTGRES__CREDENTIALS": "postgresql://postgres@127.0.0.1:5432/test"})
    try:
        proc = cli(tmp_path, "sync", "--progress", "none", "--no-check", env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    finally:
        from tests.pipeline_helpers import POSTGRES_DSN
        from transforms.warehouse import Warehouse

        wh = Warehouse.postgres(POSTGRES_DSN)
        for schema in wh.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                               (raw.replace("_raw", "") + "%",))[1]:
            wh.execute(f'DROP SCHEMA IF EXISTS "{schema[0]}" CASCADE')
        wh.close()
