"""Building blocks of `pipelines.authorize` that need no server: scopes, redirect URIs, the
authorize URL, merchant names, and the `merchants` / `revoke-local` commands on a tmp token store."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines import authorize as az
from pipelines import cli
from pipelines.config import ConfigError, Settings
from sources.instamojo.settings import ALL_SCOPES
from sources.instamojo.token_store import TokenStore, choose_refresh_token, fingerprint


def make_settings(tmp_path: Path, **changes) -> Settings:
    values = dict(
        base_url="http://127.0.0.1:9",
        client_id="unit-client",
        client_secret="unit-secret-value",
        merchants=(),
        refresh_tokens={},
        token_store_path=tmp_path / "tokens.json",
        duckdb_path=tmp_path / "w.duckdb",
        pipelines_dir=tmp_path / "pipelines",
    )
    values.update(changes)
    return Settings(**values)


# -- scopes, names, URIs -------------------------------------------------------------------------


def test_parse_scopes_orders_dedupes_and_refuses_unknown():
    assert az.parse_scopes("payments:read, user-info:read payments:read") == ("user-info:read", "payments:read")
    assert az.parse_scopes(list(reversed(ALL_SCOPES))) == ALL_SCOPES
    with pytest.raises(ConfigError, match=r"unknown scope\(s\) payments:write; choose from user-info:read"):
        az.parse_scopes("payments:write")
    with pytest.raises(ConfigError, match="no scopes given"):
        az.parse_scopes(" , ")


def test_the_default_scopes_are_the_six_read_scopes():
    assert set(ALL_SCOPES) == {"user-info:read", "user-contact:read", "payments:read", "payouts:read",
                               "products:read", "orders:read"}


@pytest.mark.parametrize("name", ["acme", "Acme_Retail-2", "a.b", "9lives"])
def test_merchant_names_accepted(name):
    assert az.validate_merchant_name(name) == name


@pytest.mark.parametrize("name", ["", "-acme", "acme corp", "../etc", "a/b", "x" * 65])
def test_merchant_names_refused(name):
    with pytest.raises(ConfigError, match="is not usable"):
        az.validate_merchant_name(name)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("http://127.0.0.1:8976/oauth2/callback", az.CallbackAddress("127.0.0.1", 8976, "/oauth2/callback")),
        ("http://localhost:8976/oauth2/callback", az.CallbackAddress("127.0.0.1", 8976, "/oauth2/callback")),
        ("http://[::1]:9000/cb/", az.CallbackAddress("::1", 9000, "/cb/")),
        ("http://127.0.0.2:9000", az.CallbackAddress("127.0.0.2", 9000, "/")),
    ],
)
def test_callback_address_for_loopback_uris(uri, expected):
    assert az.callback_address(uri) == expected


@pytest.mark.parametrize(
    "uri, complaint",
    [
        ("https://127.0.0.1:8976/cb", "must be an http:// URI"),
        ("http://app.example.com:8976/cb", "not on a loopback host"),
        ("http://10.0.0.5:8976/cb", "not on a loopback host"),
        ("http://0.0.0.0:8976/cb", "not on a loopback host"),
        ("http://127.0.0.1/cb", "needs an explicit port"),
        ("http://127.0.0.1:8976/cb?x=1", "must not carry a query"),
        ("127.0.0.1:8976/cb", "must be an http:// URI"),
    ],
)
def test_callback_address_refuses_what_it_cannot_serve(uri, complaint):
    with pytest.raises(ConfigError, match=complaint):
        az.callback_address(uri)


def test_authorize_url_carries_client_redirect_scopes_and_state():
    url = az.build_authorize_url("http://127.0.0.1:5000/", "cid", "http://127.0.0.1:8976/oauth2/callback",
                                 ("user-info:read", "payments:read"), "st4te")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://127.0.0.1:5000/oauth2/authorize"
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["http://127.0.0.1:8976/oauth2/callback"],
        "scope": ["user-info:read payments:read"],
        "state": ["st4te"],
    }


def test_redirect_uri_default_and_config(monkeypatch):
    monkeypatch.delenv("SOURCES__INSTAMOJO__REDIRECT_URI", raising=False)
    assert az.configured_redirect_uri() == "http://127.0.0.1:8976/oauth2/callback"
    monkeypatch.setenv("SOURCES__INSTAMOJO__REDIRECT_URI", "http://localhost:9123/cb")
    assert az.configured_redirect_uri() == "http://localhost:9123/cb"


def test_no_browser_without_a_display(monkeypatch):
    monkeypatch.setattr(az.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    opened = []
    monkeypatch.setattr(az.webbrowser, "open", lambda *a, **k: opened.append(a) or True)
    assert az.open_in_browser("http://127.0.0.1:1/") is False
    assert opened == []


def test_authorize_needs_the_client_credentials(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.instamojo\.client_secret in \.dlt/secrets\.toml"):
        az.authorize_merchant(make_settings(tmp_path, client_secret=None), "acme", timeout=1)


def test_result_says_what_a_sync_will_skip(tmp_path):
    result = az.AuthorizeResult("acme", ("user-info:read", "payments:read"), tmp_path / "t.json")
    assert result.missing_scopes == ("user-contact:read", "payouts:read", "products:read", "orders:read")
    assert result.skipped_resources == ("user_contact", "payouts", "products", "orders")
    assert az.AuthorizeResult("acme", ALL_SCOPES, tmp_path).skipped_resources == ()


# -- merchants / revoke-local through the CLI ----------------------------------------------------


@pytest.fixture
def cli_settings(tmp_path, monkeypatch):
    """The CLI's settings, pointed at a tmp token store (the CLI reads them through load_settings)."""
    holder = {"settings": make_settings(tmp_path)}
    monkeypatch.setattr(az, "load_settings", lambda: holder["settings"])
    return holder


def test_merchants_lists_sources_scopes_and_gaps_without_tokens(cli_settings, tmp_path, capsys):
    store = TokenStore(tmp_path / "tokens.json")
    store.put("acme", "acme-refresh-token-secret", ALL_SCOPES)
    store.put("globex", "globex-refresh-token-secret", ("user-info:read", "payments:read"))
    store.put("initech", "initech-stored-token-secret", ALL_SCOPES)
    cli_settings["settings"] = make_settings(
        tmp_path,
        merchants=("acme", "globex", "initech", "hooli"),
        # initech: a token configured since the stored one was written wins (choose_refresh_token)
        refresh_tokens={"initech": "initech-configured-token-secret", "umbrella": "umbrella-configured-secret"},
    )
    assert cli.main(["merchants"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line and not line.startswith(("Token", " "))}
    assert "token store" in rows["acme"] and "all 6 read scopes" in rows["acme"] and " yes " in rows["acme"]
    assert "user-info:read, payments:read" in rows["globex"]
    assert "secrets.toml/env" in rows["initech"] and "unknown (recorded at its first sync)" in rows["initech"]
    assert " none " in rows["hooli"]
    assert " no " in rows["umbrella"]  # has a token but is not in sources.instamojo.merchants
    assert "globex: a sync skips user_contact, payouts, products, orders (scopes not granted)" in out
    assert "hooli: no token; run `make authorize MERCHANT=hooli`" in out
    assert "umbrella: not in sources.instamojo.merchants" in out
    assert " - " in rows["initech"]  # the stale stored entry's date is not the configured token's
    for token in ("acme-refresh-token-secret", "globex-refresh-token-secret", "initech-stored-token-secret",
                  "initech-configured-token-secret", "umbrella-configured-secret"):
        assert token not in out and token[:12] not in out


def test_merchants_agrees_with_the_sync_on_which_token_wins(tmp_path):
    configured = "configured-token-123456"
    store = TokenStore(tmp_path / "tokens.json")
    store.put("acme", "authorized-token-123456", ALL_SCOPES, config_fingerprint=fingerprint(configured))
    settings = make_settings(tmp_path, merchants=("acme",), refresh_tokens={"acme": configured})
    [info] = az.list_merchants(settings)
    assert info.token_source == "token store"
    assert choose_refresh_token("acme", configured, store) == ("authorized-token-123456", None)


def test_merchants_with_none_says_how_to_add_one(cli_settings, capsys):
    assert cli.main(["merchants"]) == 0
    assert "No merchants yet" in capsys.readouterr().out


def test_revoke_local_forgets_the_stored_token_only(cli_settings, tmp_path, capsys):
    store = TokenStore(tmp_path / "tokens.json")
    store.put("acme", "acme-refresh-token-secret", ALL_SCOPES)
    store.put("globex", "globex-refresh-token-secret", ALL_SCOPES)
    assert cli.main(["revoke-local", "acme"]) == 0
    out = capsys.readouterr().out
    assert "does NOT revoke it at Instamojo" in out
    assert store.get("acme") is None and store.get("globex") is not None
    assert stat.S_IMODE(os.stat(store.file_of("globex")).st_mode) == 0o600
    assert cli.main(["revoke-local", "acme"]) == 2
    err = capsys.readouterr().err
    assert "no stored token for merchant 'acme'" in err and "stored: globex" in err


def test_revoke_local_warns_about_a_configured_token(cli_settings, tmp_path, capsys):
    TokenStore(tmp_path / "tokens.json").put("acme", "acme-refresh-token-secret", ALL_SCOPES)
    cli_settings["settings"] = make_settings(tmp_path, refresh_tokens={"acme": "configured-secret-token"})
    assert cli.main(["revoke-local", "acme"]) == 0
    captured = capsys.readouterr()
    assert "A token is still configured for 'acme'" in captured.out
    assert "acme-refresh" not in captured.out + captured.err
    assert "configured-secret" not in captured.out + captured.err


def test_help_of_each_command(capsys):
    for command, expected in (("authorize", "--redirect-uri"), ("merchants", "Never shows a token"),
                              ("revoke-local", "does not revoke the token at Instamojo")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert expected in " ".join(capsys.readouterr().out.split())


def test_cli_refuses_bad_scopes_and_timeouts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["authorize", "acme", "--scopes", "payments:write"])
    assert exit_info.value.code == 2
    assert "unknown scope(s) payments:write" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["authorize", "acme", "--timeout", "0"])
    assert "not a positive number of seconds" in capsys.readouterr().err


def test_cli_bad_redirect_uri_is_a_config_error(cli_settings, capsys):
    assert cli.main(["authorize", "acme", "--redirect-uri", "http://example.com:8976/cb", "--no-browser"]) == 2
    assert "not on a loopback host" in capsys.readouterr().err
