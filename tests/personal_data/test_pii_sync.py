"""Personal data on the way in: `pseudonymize` and `drop` applied in the source, before anything
is written. Real processes (`python -m pipelines sync`), the sandbox over HTTP, real DuckDB files,
real dbt; one sandbox and one sync per mode for the whole module."""

from __future__ import annotations

from pathlib import Path

import pytest

from sources.instamojo.personal import PersonalDataPolicy, is_token, normalise_phone
from tests.personal_data.pii_helpers import (
    KEY,
    OTHER_KEY,
    PERSONAL_COLUMNS,
    buyers_plaintext,
    cli,
    folder_bytes,
    leaks,
    project_env,
    query,
    small_sandbox,
)

pytestmark = pytest.mark.slow  # three syncs with marts (one with the checks): about two minutes

ALL_PSEUDONYMIZED = {"buyer_contact": "pseudonymize", "buyer_identity": "pseudonymize",
                         "merchant_contact": "pseudonymize", "pii_key": KEY}
MARTS = ("payments_reconciled", "payout_reconciliation", "order_reconciliation", "daily_settlement_summary",
         "reconciliation_exceptions")


@pytest.fixture(scope="module")
def sb():
    with small_sandbox() as sandbox:
        sandbox.start()
        yield sandbox


@pytest.fixture(scope="module")
def runs(sb, tmp_path_factory):
    """One sync per mode: keep (today's behaviour), pseudonymize (everything), drop (everything,
    with the checks run)."""
    root = tmp_path_factory.mktemp("pii-sync")
    done = {}
    for name, personal, args in (
        ("keep", {}, ("--no-check",)),
        ("pseudonymize", ALL_PSEUDONYMIZED, ("--no-check",)),
        ("drop", {"buyer_contact": "drop", "buyer_identity": "drop", "merchant_contact": "drop"}, ()),
    ):
        folder = root / name
        env = project_env(sb, folder, **personal)
        proc = cli(folder, "--log-level", "DEBUG", "sync", "--progress", "none", *args, env=env)
        done[name] = (folder, proc)
    return done


def ok(run: tuple[Path, object]) -> Path:
    folder, proc = run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder


def test_pseudonymize_leaves_no_plaintext_in_warehouse_pipelines_folder_or_logs(sb, runs):
    plain = buyers_plaintext(sb)
    keep = ok(runs["keep"])
    # the search finds plaintext where there is some: the keep run's file holds every value
    assert leaks((keep / "warehouse.duckdb").read_bytes(), plain) == sorted(plain)
    folder = ok(runs["pseudonymize"])
    proc = runs["pseudonymize"][1]
    assert leaks((folder / "warehouse.duckdb").read_bytes(), plain) == []
    assert leaks(folder_bytes(folder / "pipelines"), plain) == []  # load packages, state, work file
    assert leaks((proc.stdout + proc.stderr).encode(), plain) == []  # DEBUG logs and the summary
    assert KEY not in proc.stdout + proc.stderr
    assert KEY.encode() not in folder_bytes(folder)


def test_the_same_buyer_has_the_same_token_in_payments_and_orders(sb, runs):
    folder = ok(runs["pseudonymize"])
    db = folder / "warehouse.duckdb"
    policy = PersonalDataPolicy({"buyer_contact": "pseudonymize"}, KEY)
    merchant = sb.merchants[0]
    order = sb.truth(merchant, "orders")[0]
    (email, phone), = query(db, f"SELECT buyer_email, buyer_phone FROM instamojo_raw.orders "
                                f"WHERE merchant = '{merchant}' AND id = '{order['id']}'")
    assert email == policy.token(order["buyer_email"], "email")
    # orders show the bare ten-digit number, payments +91…: one token for both
    assert order["buyer_phone"].isdigit() and len(order["buyer_phone"]) == 10
    assert phone == policy.token("+91" + order["buyer_phone"], "phone")
    # joins keep working: every order's buyer is found among the payments by email and phone
    (orders, joined), = query(db, "SELECT COUNT(*), COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM "
                                  "instamojo_raw.payments p WHERE p.merchant = o.merchant AND p.email = o.buyer_email "
                                  "AND p.phone = o.buyer_phone)) FROM instamojo_raw.orders o")
    assert orders > 0 and joined == orders
    # another key gives other tokens
    other = PersonalDataPolicy({"buyer_contact": "pseudonymize"}, OTHER_KEY)
    assert other.token(order["buyer_email"], "email") != email


def test_every_personal_column_is_a_token_and_nothing_else_changed(runs):
    keep, pseudo = ok(runs["keep"]) / "warehouse.duckdb", ok(runs["pseudonymize"]) / "warehouse.duckdb"
    for table, columns in PERSONAL_COLUMNS.items():
        values = [v for row in query(pseudo, f"SELECT {', '.join(columns)} FROM instamojo_raw.{table}") for v in row]
        assert values and all(v is None or is_token(v) for v in values), table
        others = [c for (c,) in query(keep, f"SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                            f"'instamojo_raw' AND table_name = '{table}' ORDER BY ordinal_position")
                  if c not in columns and c not in ("_synced_at", "_dlt_load_id", "_dlt_id")]
        sql = f"SELECT {', '.join(others)} FROM instamojo_raw.{table} ORDER BY ALL"
        assert query(keep, sql) == query(pseudo, sql), table


def test_marts_equal_those_of_a_keep_run(runs):
    keep, pseudo = ok(runs["keep"]) / "warehouse.duckdb", ok(runs["pseudonymize"]) / "warehouse.duckdb"
    for mart in MARTS:
        columns = [c for (c,) in query(keep, "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                             f"'instamojo' AND table_name = '{mart}' ORDER BY ordinal_position")
                   if "synced" not in c]
        sql = f"SELECT {', '.join(columns)} FROM instamojo.{mart} ORDER BY ALL"
        rows = query(keep, sql)
        assert rows or mart == "reconciliation_exceptions"
        assert query(pseudo, sql) == rows, mart


def test_drop_loads_nulls_and_the_checks_pass(runs):
    folder, proc = runs["drop"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks PASSED" in proc.stdout
    db = folder / "warehouse.duckdb"
    for table, columns in PERSONAL_COLUMNS.items():
        counts = query(db, f"SELECT COUNT(*), {', '.join(f'COUNT({c})' for c in columns)} FROM instamojo_raw.{table}")[0]
        assert counts[0] > 0 and set(counts[1:]) == {0}, table
    # what is not personal is still there
    assert query(db, "SELECT COUNT(*) FROM instamojo_raw.orders WHERE buyer_country IS NULL")[0][0] == 0


def test_phones_are_normalised_to_e164():
    for spelling in ("+91 98123 45678", "9812345678", "09812345678", "919812345678", "0091-98123-45678",
                     "(98123) 45678"):
        assert normalise_phone(spelling) == "+919812345678", spelling
    assert normalise_phone("+1 415 555 0100") == "+14155550100"
    policy = PersonalDataPolicy({"buyer_contact": "pseudonymize"}, KEY)
    token = policy.token(" Asha@Example.COM ", "email")
    assert token == policy.token("asha@example.com", "email") and policy.token(token, "email") == token
    assert KEY not in repr(policy)


def test_rewrite_pii_turns_a_keep_warehouse_into_what_a_pseudonymize_sync_makes(sb, runs, tmp_path):
    import shutil

    keep, pseudo = ok(runs["keep"]), ok(runs["pseudonymize"])
    folder = tmp_path / "rewritten"
    shutil.copytree(keep, folder)
    env = project_env(sb, folder, **ALL_PSEUDONYMIZED)
    proc = cli(folder, "rewrite-pii", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "instamojo_raw.payments.email" in proc.stdout
    rewritten = folder / "warehouse.duckdb"
    tables = [t for (t,) in query(pseudo / "warehouse.duckdb", "SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = 'instamojo_raw' AND table_name NOT LIKE '_dlt%'")]
    assert set(PERSONAL_COLUMNS) <= set(tables)
    for table in tables:
        columns = [c for (c,) in query(rewritten, "SELECT column_name FROM information_schema.columns WHERE "
                                                  f"table_schema = 'instamojo_raw' AND table_name = '{table}'")
                   if c not in ("_synced_at", "_dlt_load_id", "_dlt_id")]
        sql = f"SELECT {', '.join(columns)} FROM instamojo_raw.{table} ORDER BY ALL"
        assert query(rewritten, sql) == query(pseudo / "warehouse.duckdb", sql), table
    plain = buyers_plaintext(sb)
    for db in (rewritten, folder / "pipelines" / "work.duckdb"):
        assert leaks(db.read_bytes(), plain) == [], db
    again = cli(folder, "rewrite-pii", env=env)
    assert again.returncode == 0 and "nothing to rewrite" in again.stdout
    assert KEY not in proc.stdout + proc.stderr + again.stdout + again.stderr
