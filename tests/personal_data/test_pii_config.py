"""The personal-data settings: bad values and a misplaced or missing key are configuration
errors (exit 2) naming the key, raised before any request reaches the API."""

from __future__ import annotations

import pytest

from tests.personal_data.pii_helpers import KEY, cli, project_env, small_sandbox


@pytest.fixture(scope="module")
def sb():
    with small_sandbox() as sandbox:
        sandbox.start()
        yield sandbox


def test_pseudonymize_without_a_key_is_refused_before_any_request(sb, tmp_path):
    env = project_env(sb, tmp_path, buyer_contact="pseudonymize")
    sb.reset_stats()
    before = sb.request_count()
    proc = cli(tmp_path, "sync", "--progress", "none", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sources.instamojo.pii_key" in proc.stderr and "SOURCES__INSTAMOJO__PII_KEY" in proc.stderr
    assert "sources.instamojo.personal_data.buyer_contact" in proc.stderr
    assert sb.request_count() == before


def test_an_unknown_mode_names_the_key_and_where_it_came_from(sb, tmp_path):
    env = project_env(sb, tmp_path, buyer_identity="hash")
    proc = cli(tmp_path, "sync", env=env)
    assert proc.returncode == 2
    assert "sources.instamojo.personal_data.buyer_identity = 'hash'" in proc.stderr
    assert "SOURCES__INSTAMOJO__PERSONAL_DATA__BUYER_IDENTITY" in proc.stderr
    assert '"keep", "pseudonymize", "drop"' in proc.stderr


def test_a_key_in_the_committed_config_file_is_refused_and_never_shown(sb, tmp_path):
    env = project_env(sb, tmp_path, buyer_contact="pseudonymize")
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(f'[sources.instamojo]\npii_key = "{KEY}"\n')
    proc = cli(tmp_path, "sync", env=env)
    assert proc.returncode == 2
    assert "config.toml" in proc.stderr and "secrets.toml" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def test_a_short_key_is_refused_without_showing_it(sb, tmp_path):
    env = project_env(sb, tmp_path, buyer_contact="pseudonymize", pii_key="short-key")
    proc = cli(tmp_path, "sync", env=env)
    assert proc.returncode == 2
    assert "sources.instamojo.pii_key" in proc.stderr and "short-key" not in proc.stderr


def test_a_refused_token_past_the_grace_period_says_forget_is_due(sb, tmp_path):
    from sources.instamojo.token_store import TokenStore

    env = project_env(sb, tmp_path)
    victim = sb.merchants[2]
    sb.revoke(merchant=victim)
    env["SOURCES__INSTAMOJO__MERCHANTS"] = victim
    proc = cli(tmp_path, "sync", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 1
    assert "make forget" not in proc.stdout  # refused for less than the default 30 days
    since = TokenStore(tmp_path / "tokens.json").refused_since(victim)
    assert since is not None
    env["SOURCES__INSTAMOJO__PERSONAL_DATA__REVOKED_GRACE_DAYS"] = "0"
    proc = cli(tmp_path, "sync", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 1
    assert f"make forget MERCHANT={victim}` is due" in proc.stdout and since in proc.stdout
    assert TokenStore(tmp_path / "tokens.json").refused_since(victim) == since  # the first time is kept


def test_retention_drops_personal_fields_of_old_records_only(sb, tmp_path):
    from datetime import UTC, datetime, timedelta

    from tests.personal_data.pii_helpers import query

    merchant = sb.merchants[0]
    created = sorted(datetime.fromisoformat(p["created_at"]) for p in sb.truth(merchant, "payments"))
    middle = created[len(created) // 2]
    days = (datetime.now(UTC) - middle).total_seconds() / 86_400
    env = project_env(sb, tmp_path, pii_retention_days=f"{days:.4f}")
    env["SOURCES__INSTAMOJO__MERCHANTS"] = merchant
    proc = cli(tmp_path, "sync", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Retention (pii_retention_days" in proc.stdout
    rows = query(tmp_path / "pipelines" / "work.duckdb",
                 "SELECT created_at, email, phone, name FROM instamojo_raw.payments")
    old = [r for r in rows if r[0] < middle]
    new = [r for r in rows if r[0] > middle + timedelta(hours=1)]  # the cutoff moved on while the test ran
    assert old and new
    assert all(r[1:] == (None, None, None) for r in old)
    assert all(None not in r[1:] for r in new)


def test_a_forgotten_merchant_stays_forgotten_until_re_authorized(tmp_path):
    from sources.instamojo.token_store import TokenStore, fingerprint

    store = TokenStore(tmp_path / "tokens")
    store.mark_forgotten("acme", fingerprint("configured-token-1"))
    assert store.forgotten("acme", "configured-token-1")  # the same token still in secrets.toml
    assert store.forgotten("acme", None)
    assert store.forgotten("acme", "configured-token-2") is None  # another token configured since
    store.put("acme", "stored-by-make-authorize")
    assert store.forgotten("acme", "configured-token-1") is None  # `make authorize` since
    assert "acme" in store.merchants() and len(store.merchants()) == 1  # the marks are no entries


def test_drop_and_pseudonymize_keep_the_column_types_and_nulls():
    import pyarrow as pa

    from sources.instamojo.personal import PersonalDataPolicy, is_token

    rows = pa.table({"buyer_email": pa.array(["A@x.in", None, "a@x.in "]), "buyer_phone": pa.nulls(3),
                     "buyer_name": ["Asha  Rao", "asha rao", ""], "buyer_country": ["India"] * 3})
    out = PersonalDataPolicy({"buyer_contact": "pseudonymize", "buyer_identity": "drop"}, KEY).apply("orders", rows)
    assert out.schema == rows.schema
    email = out.column("buyer_email").to_pylist()
    assert email[1] is None and email[0] == email[2] and is_token(email[0])
    assert out.column("buyer_phone").null_count == 3 and out.column("buyer_name").null_count == 3
    assert out.column("buyer_country").to_pylist() == ["India"] * 3


def test_the_key_from_secrets_toml_pseudonymizes(sb, tmp_path):
    from tests.personal_data.pii_helpers import query

    env = project_env(sb, tmp_path)
    env["SOURCES__INSTAMOJO__MERCHANTS"] = sb.merchants[0]
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.instamojo.personal_data]\nbuyer_contact = "pseudonymize"\n')
    (tmp_path / ".dlt" / "secrets.toml").write_text(f'[sources.instamojo]\npii_key = "{KEY}"\n')
    proc = cli(tmp_path, "sync", "--no-transform", "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    emails = query(tmp_path / "pipelines" / "work.duckdb", "SELECT DISTINCT email FROM instamojo_raw.payments")
    assert emails and all(e.startswith("h1:") for (e,) in emails)
    assert KEY not in proc.stdout + proc.stderr
