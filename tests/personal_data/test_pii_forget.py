"""`python -m pipelines forget <merchant>`: after syncing three merchants and forgetting one, no
row, state, package or token of it is left, in the working file and the analysts' copy (or in
Postgres), the other two are untouched, a second forget is a no-op, and the next sync neither
fails nor brings it back until it is re-authorized. Real processes, sandbox over HTTP."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dlt.common.versioned_state import decompress_state

from sources.instamojo.token_store import TokenStore
from tests.personal_data.pii_helpers import (
    cli,
    emails,
    leaks,
    project_env,
    query,
    small_sandbox,
)

pytestmark = pytest.mark.slow  # three syncs and two forgets: about a minute


@pytest.fixture(scope="module")
def sb():
    with small_sandbox() as sandbox:
        sandbox.start()
        yield sandbox


def merchant_rows(db: Path) -> dict[tuple[str, str], dict[str, int]]:
    """(schema, table) → merchant → rows, for every base table with a merchant column."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("SELECT c.table_schema, c.table_name FROM information_schema.columns c JOIN "
                             "information_schema.tables t USING (table_catalog, table_schema, table_name) "
                             "WHERE c.column_name = 'merchant' AND t.table_type = 'BASE TABLE'").fetchall()
        return {(s, t): dict(con.execute(f"SELECT merchant, COUNT(*) FROM {s}.{t} GROUP BY 1").fetchall())
                for s, t in tables}


def stored_states(db: Path) -> list[dict]:
    return [decompress_state(s) for (s,) in query(db, "SELECT state FROM instamojo_raw._dlt_pipeline_state")]


def merchants_in(state: dict) -> set[str]:
    return set(((state.get("sources") or {}).get("instamojo") or {}).get("merchants") or {})


@pytest.fixture(scope="module")
def forgotten(sb, tmp_path_factory):
    folder = tmp_path_factory.mktemp("forget")
    env = project_env(sb, folder)
    synced = cli(folder, "sync", "--no-check", "--progress", "none", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    victim = sb.merchants[0]
    before = merchant_rows(folder / "warehouse.duckdb")
    declined = on_a_terminal(folder, env, "not-the-name\n", "forget", victim)
    assert merchant_rows(folder / "warehouse.duckdb") == before  # nothing erased
    unconfirmed = cli(folder, "forget", victim, env=env)  # no terminal, no --yes
    first = cli(folder, "forget", victim, "--yes", env=env)
    second = cli(folder, "forget", victim, "--yes", env=env)
    return folder, env, victim, before, (declined, unconfirmed), first, second


def on_a_terminal(folder: Path, env: dict[str, str], typed: str, *args: str) -> tuple[int, str]:
    """Run the CLI with a terminal as its stdin, typing `typed`; returns (exit code, stdout)."""
    import os
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines", *args], cwd=folder, env=env, stdin=secondary,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(secondary)
        os.write(primary, typed.encode())
        out, _ = proc.communicate(timeout=300)
    finally:
        os.close(primary)
    return proc.returncode, out


def test_forget_asks_on_a_terminal_and_refuses_without_one(forgotten):
    _, _, _, _, (declined, unconfirmed), _, _ = forgotten
    code, out = declined
    assert code == 1 and "not confirmed" in out
    assert "Will forget" in out and "instamojo_raw.payments" in out  # what it would remove, first
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr


def test_no_row_state_package_or_token_of_the_merchant_is_left(sb, forgotten):
    folder, _, victim, before, _, first, second = forgotten
    assert first.returncode == 0, first.stdout + first.stderr
    assert "instamojo_raw.payments" in first.stdout and "rows removed" in first.stdout
    assert any(victim in counts for counts in before.values())
    for db in (folder / "pipelines" / "work.duckdb", folder / "warehouse.duckdb"):
        after = merchant_rows(db)
        assert not [table for table, counts in after.items() if victim in counts], db
        # the other two are untouched
        assert {t: {m: n for m, n in c.items() if m != victim} for t, c in before.items()} == after
        assert all(victim not in merchants_in(s) for s in stored_states(db))
        assert any(merchants_in(s) for s in stored_states(db))
    import dlt

    local = dlt.pipeline(pipeline_name="instamojo__sync", pipelines_dir=str(folder / "pipelines")).state
    assert victim not in merchants_in(local) and len(merchants_in(local)) == 2
    assert not list((folder / "pipelines").glob("instamojo__sync/load/loaded/*"))
    store = TokenStore(folder / "tokens.json")
    assert store.get(victim) is None and all(store.get(m) for m in sb.merchants[1:])
    assert second.returncode == 0 and "nothing to forget" in second.stdout


def test_the_duckdb_files_bytes_hold_none_of_its_buyers_emails(sb, forgotten):
    folder, _, victim, _, _, first, _ = forgotten
    assert "left in the file's bytes: 0 of" in first.stdout
    victims = emails(sb, victim) - set().union(*(emails(sb, m) for m in sb.merchants[1:]))
    assert victims
    for db in (folder / "pipelines" / "work.duckdb", folder / "warehouse.duckdb"):
        assert leaks(db.read_bytes(), victims) == [], db
    # the others' are still there (the search finds what is there)
    assert leaks((folder / "warehouse.duckdb").read_bytes(), emails(sb, sb.merchants[1]))


def test_the_next_sync_skips_it_until_it_is_re_authorized(sb, forgotten):
    folder, env, victim, _, _, _, _ = forgotten
    proc = cli(folder, "sync", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "forgotten" in proc.stdout and f"make authorize MERCHANT={victim}" in proc.stdout
    assert victim not in {m for counts in merchant_rows(folder / "warehouse.duckdb").values() for m in counts}
    # re-authorized (as `make authorize` does: a token stored again): synced from scratch
    from tests.oauth_flow import obtain_tokens

    TokenStore(folder / "tokens.json").put(victim, obtain_tokens(sb, victim)["refresh_token"])
    proc = cli(folder, "sync", "--no-check", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payments = dict(query(folder / "warehouse.duckdb", "SELECT merchant, COUNT(*) FROM instamojo_raw.payments GROUP BY 1"))
    assert payments.get(victim) == len(sb.truth(victim, "payments"))


@pytest.mark.postgres
def test_rewrite_pii_and_forget_on_postgres(sb, tmp_path):
    """On Postgres too: rewrite-pii turns stored plaintext into tokens (idempotently); forget
    leaves no row or state of the merchant and is a no-op the second time."""
    import uuid

    from tests.pipeline_helpers import POSTGRES_DSN
    from transforms.warehouse import Warehouse

    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = project_env(sb, tmp_path)
    env.update({"INSTAMOJO_ELT__DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_DSN,
                "INSTAMOJO_ELT__RAW_DATASET": f"{prefix}_raw", "INSTAMOJO_ELT__MARTS_DATASET": f"{prefix}_marts"})
    victim = sb.merchants[1]
    wh = Warehouse.postgres(POSTGRES_DSN)

    def rows_by_merchant() -> dict[str, int]:
        _, tables = wh.query("SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = "
                             "'merchant' AND table_schema LIKE %s", (f"{prefix}%",))
        counts: dict[str, int] = {}
        for schema, table in tables:
            for merchant, n in wh.query(f'SELECT merchant, COUNT(*) FROM "{schema}"."{table}" GROUP BY 1')[1]:
                counts[merchant] = counts.get(merchant, 0) + n
        return counts

    try:
        synced = cli(tmp_path, "sync", "--no-check", "--progress", "none", env=env)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        from tests.personal_data.pii_helpers import KEY

        pseudo = {**env, "SOURCES__INSTAMOJO__PII_KEY": KEY,
                  "SOURCES__INSTAMOJO__PERSONAL_DATA__BUYER_CONTACT": "pseudonymize"}
        rewritten = cli(tmp_path, "rewrite-pii", env=pseudo)
        assert rewritten.returncode == 0, rewritten.stdout + rewritten.stderr
        _, emails_now = wh.query(f"SELECT DISTINCT email FROM {prefix}_raw.payments")
        assert emails_now and all(e.startswith("h1:") for (e,) in emails_now)
        again = cli(tmp_path, "rewrite-pii", env=pseudo)
        assert again.returncode == 0 and "nothing to rewrite" in again.stdout
        before = rows_by_merchant()
        assert before.get(victim)
        first = cli(tmp_path, "forget", victim, "--yes", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        after = rows_by_merchant()
        assert victim not in after and after == {m: n for m, n in before.items() if m != victim}
        _, states = wh.query(f"SELECT state FROM {prefix}_raw._dlt_pipeline_state")
        assert states and all(victim not in merchants_in(decompress_state(s)) for (s,) in states)
        second = cli(tmp_path, "forget", victim, "--yes", env=env)
        assert second.returncode == 0 and "nothing to forget" in second.stdout
    finally:
        _, schemas = wh.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                              (f"{prefix}%",))
        for (schema,) in schemas:
            wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        wh.close()
