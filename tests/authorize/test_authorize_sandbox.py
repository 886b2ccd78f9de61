"""`make authorize` against the sandbox over loopback HTTP, driven the way a browser would: GET the
authorize URL the command printed, submit the consent form, follow the 302 to the command's
callback server. Then a sync runs on the stored token; and no secret reaches output or logs."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import duckdb
import pytest
import requests

from instamojo_sandbox import Sandbox, SandboxConfig
from instamojo_sandbox.config import App
from pipelines import authorize as az
from pipelines import cli
from pipelines.config import ConfigError, Settings
from pipelines.sync import sync_merchant
from sources.instamojo.settings import ALL_SCOPES
from sources.instamojo.token_store import TokenStore, fingerprint

CLIENT_ID = "authorize-test-client"
CLIENT_SECRET = "Zq9x-client-secret-9f3b2c"
STALE_TOKEN = "stale-configured-refresh-token-4d1e"  # configured in "secrets.toml", unknown to the API
BROWSER_THREAD = "test-browser"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sandbox(sandbox_factory):
    """One merchant with a few days of data (tests/conftest.py's factory stops it afterwards):
    these tests exercise OAuth, and sync only the merchant's profile."""
    return sandbox_factory(SandboxConfig(seed=7, profile="small", merchants=1, days=3))


@pytest.fixture
def redirect_uri(sandbox) -> str:
    """A callback on a free port, registered for the test app (as the app developer would)."""
    uri = f"http://127.0.0.1:{free_port()}/oauth2/callback"
    sandbox.register_app(App(CLIENT_ID, CLIENT_SECRET, redirect_uris=(uri,), name="authorize tests"))
    return uri


@pytest.fixture
def settings(sandbox, tmp_path) -> Settings:
    return Settings(
        base_url=sandbox.base_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        merchants=("acme",),
        refresh_tokens={},
        token_store_path=tmp_path / ".dlt" / "instamojo.tokens.json",
        duckdb_path=tmp_path / "warehouse.duckdb",
        pipelines_dir=tmp_path / "pipelines",
    )


class Browser:
    """Plays the merchant's browser on the sandbox's consent page.

    Runs in a thread of its own (so its HTTP client's log lines, which show the callback URL,
    can be told apart from the command's) and records what it saw: the code the redirect carried
    and the callback server's answer.
    """

    def __init__(self, sandbox_merchant: str, *, decision: str = "approve",
                 tamper: Callable[[str], str] | None = None, delay: float = 0.0) -> None:
        self.sandbox_merchant = sandbox_merchant
        self.decision = decision
        self.tamper = tamper
        self.delay = delay
        self.calls = 0
        self.codes: list[str] = []
        self.final: requests.Response | None = None
        self.error: BaseException | None = None

    def __call__(self, url: str) -> None:
        self.calls += 1
        thread = threading.Thread(target=self._run, args=(url,), name=BROWSER_THREAD)
        thread.start()
        thread.join(60)
        if self.error is not None:
            raise self.error

    def _run(self, url: str) -> None:
        try:
            self._browse(url)
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc

    def _browse(self, url: str) -> None:
        http = requests.Session()
        page = http.get(url, allow_redirects=False, timeout=30)
        assert page.status_code == 200, page.text
        form = re.search(r'<form method="post" action="([^"]+)">', page.text)
        request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
        options = re.findall(r'<option value="([^"]+)"', page.text)
        assert form and request_id and self.sandbox_merchant in options, page.text
        answer = http.post(urljoin(page.url, form.group(1)), allow_redirects=False, timeout=30,
                           data={"request_id": request_id.group(1), "merchant": self.sandbox_merchant,
                                 "decision": self.decision})
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        self.codes += parse_qs(urlsplit(location).query).get("code", [])
        if self.tamper is not None:
            location = self.tamper(location)
        if self.delay:
            time.sleep(self.delay)
        self.final = http.get(location, timeout=30)  # the browser follows the redirect


def with_query(location: str, **changes: str | None) -> str:
    """`location` with some query parameters replaced (None removes one)."""
    parts = urlsplit(location)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def issued_tokens(sandbox: Sandbox) -> list[str]:
    """Every access and refresh token the sandbox issued (its internal registry)."""
    return list(sandbox.oauth._access) + list(sandbox.oauth._refresh)


def leaked(text: str, secrets: list[str]) -> list[str]:
    """The secrets (or their first 12 characters) that appear in `text`."""
    assert secrets and all(len(s) >= 12 for s in secrets)
    return [s for s in secrets if s in text or s[:12] in text]


def command_logs(caplog) -> str:
    """Log lines of the command (not of the test's browser, whose HTTP client logs the URLs it
    visits, as any browser history would)."""
    return "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if r.threadName != BROWSER_THREAD)


# -- success -------------------------------------------------------------------------------------


def test_success_stores_the_token_and_a_sync_uses_it(sandbox, redirect_uri, settings, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(**{**vars(settings), "refresh_tokens": {"acme": STALE_TOKEN}})
    # The stale configured token is what a sync uses before the merchant is authorized: it fails.
    before = sync_merchant(settings, "acme", resources=["user_info"])
    assert not before.ok and "invalid_grant" in before.error

    browser = Browser(sandbox.merchants[0])
    result = az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=30,
                                   open_browser=False, on_url=browser)

    assert result.merchant == "acme"
    assert result.scopes == ALL_SCOPES
    assert result.token_store_path == settings.token_store_path
    assert browser.calls == 1 and browser.final.status_code == 200
    assert "Authorized" in browser.final.text and "acme" in browser.final.text
    store = TokenStore(settings.token_store_path)
    entry = store.get("acme")
    assert entry.scopes == ALL_SCOPES
    assert entry.refresh_token in sandbox.oauth._refresh  # the token the sandbox issued for the code
    # marks the stored token as newer than the configured one (token_store's rule)
    assert entry.config_fingerprint == fingerprint(STALE_TOKEN)
    assert stat.S_IMODE(os.stat(settings.token_store.file_of("acme")).st_mode) == 0o600

    after = sync_merchant(settings, "acme", resources=["user_info"])
    assert after.ok, after.error
    with duckdb.connect(str(settings.duckdb_work_path), read_only=True) as con:
        rows = con.execute("select merchant from instamojo_raw.user_info").fetchall()
    assert rows == [("acme",)]

    out = capsys.readouterr()
    assert "oauth2/authorize?" in out.err  # the URL is printed for the merchant to open
    secrets = [CLIENT_SECRET, *browser.codes, *issued_tokens(sandbox)]
    assert len(browser.codes) == 1 and len(secrets) >= 4
    assert leaked(out.out + out.err, secrets) == [], out.out + "\n-----\n" + out.err
    logs = command_logs(caplog)
    assert "callback server: \"GET /oauth2/callback" in logs  # the request was logged, its query not
    assert leaked(logs, secrets) == []
    assert leaked(str(result) + repr(entry), secrets) == []


def test_scopes_asked_for_are_recorded_and_the_sync_skips_the_rest(sandbox, redirect_uri, settings):
    result = az.authorize_merchant(settings, "acme", scopes=["payments:read", "user-info:read"],
                                   redirect_uri=redirect_uri, timeout=30, open_browser=False,
                                   on_url=Browser(sandbox.merchants[0]))
    assert result.scopes == ("user-info:read", "payments:read")
    assert result.skipped_resources == ("user_contact", "payouts", "products", "orders")
    assert TokenStore(settings.token_store_path).get("acme").scopes == ("user-info:read", "payments:read")
    synced = sync_merchant(settings, "acme", resources=["user_info", "payouts"])
    assert synced.ok, synced.error
    assert synced.skipped == {"payouts": "scope payouts:read not granted"}
    assert sandbox.request_count(endpoint="payouts") == 0  # known up front, not by a 403


def test_merchants_one_after_another_on_the_same_port(sandbox_factory, redirect_uri, settings):
    """The demo authorizes several merchants in a row on one redirect URI; re-authorizing one
    replaces its token."""
    sb = sandbox_factory(SandboxConfig(seed=7, profile="small", merchants=2, days=3))
    sb.register_app(App(CLIENT_ID, CLIENT_SECRET, redirect_uris=(redirect_uri,), name="authorize tests"))
    settings = settings.with_overrides(base_url=sb.base_url)
    for name, account in (("acme", sb.merchants[0]), ("globex", sb.merchants[1]), ("acme", sb.merchants[0])):
        az.authorize_merchant(settings, name, redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=Browser(account))
    stored = TokenStore(settings.token_store_path).merchants()
    assert sorted(stored) == ["acme", "globex"]
    assert stored["acme"].refresh_token != stored["globex"].refresh_token
    assert (stored["acme"].account_username, stored["globex"].account_username) == tuple(sb.merchants)
    assert sb.request_count(endpoint="oauth_token", status=200) == 3


def test_a_second_name_for_an_authorized_account_is_refused(sandbox, redirect_uri, settings):
    """One Instamojo account, two local names: its payments would be loaded and counted twice."""
    az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                          on_url=Browser(sandbox.merchants[0]))
    with pytest.raises(az.AuthorizeError) as refused:
        az.authorize_merchant(settings, "acme_again", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=Browser(sandbox.merchants[0]))
    message = str(refused.value)
    assert "'acme_again'" in message and "'acme'" in message and sandbox.merchants[0] in message
    assert "Nothing was stored" in message
    assert sorted(TokenStore(settings.token_store_path).merchants()) == ["acme"]


def test_cli_authorize_then_merchants(sandbox, redirect_uri, settings, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(az, "load_settings", lambda: settings)
    browser = Browser(sandbox.merchants[0])
    # the command's browser is the test's: it opens the printed URL like a person would
    monkeypatch.setattr(az, "open_in_browser", lambda url: browser(url) or True)
    code = cli.main(["authorize", "acme", "--redirect-uri", redirect_uri, "--timeout", "30"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Merchant 'acme' authorized. Scopes granted: user-info:read" in out.out
    assert str(settings.token_store_path) in out.out and "never printed" in out.out
    assert cli.main(["merchants"]) == 0
    listing = capsys.readouterr().out
    account = f"{sandbox.merchants[0]} \\(account [0-9a-f]+\\)"
    assert re.search(rf"^acme\s+{account}\s+token store\s+yes\s+\d{{4}}-\d\d-\d\dT[\d:]+\s+all 6 read scopes$",
                     listing, re.M), listing
    secrets = [CLIENT_SECRET, *browser.codes, *issued_tokens(sandbox)]
    assert leaked(out.out + out.err + listing + command_logs(caplog), secrets) == []


# -- refusals ------------------------------------------------------------------------------------


def test_deny(sandbox, redirect_uri, settings):
    browser = Browser(sandbox.merchants[0], decision="deny")
    with pytest.raises(az.AuthorizationDenied, match="the merchant denied access") as err:
        az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=browser)
    assert err.value.error == "access_denied"
    assert "make authorize MERCHANT=acme" in str(err.value)
    assert browser.final.status_code == 403 and "denied" in browser.final.text
    assert TokenStore(settings.token_store_path).get("acme") is None


@pytest.mark.parametrize(
    "tamper, complaint",
    [
        (lambda loc: with_query(loc, state="forged-state-value"), "with a state that is not the one this run sent"),
        (lambda loc: with_query(loc, state=None), "without a state"),
    ],
    ids=["wrong-state", "missing-state"],
)
def test_wrong_or_missing_state_is_refused(sandbox, redirect_uri, settings, tamper, complaint):
    browser = Browser(sandbox.merchants[0], tamper=tamper)
    with pytest.raises(az.StateMismatch, match=complaint) as err:
        az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=browser)
    assert "possible CSRF" in str(err.value) and "Nothing was stored" in str(err.value)
    assert browser.final.status_code == 403
    assert sandbox.request_count(endpoint="oauth_token") == 0  # the code was never exchanged
    assert TokenStore(settings.token_store_path).get("acme") is None


def test_expired_code(sandbox, redirect_uri, settings):
    sandbox.configure(code_ttl=1.0)
    browser = Browser(sandbox.merchants[0], delay=1.6)  # the merchant's browser is slow to redirect
    with pytest.raises(az.CodeExchangeFailed, match="invalid_grant: Authorization code has expired") as err:
        az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=browser)
    assert "codes live 60 s and work once" in str(err.value)
    assert browser.final.status_code == 502 and "Authorization not completed" in browser.final.text
    assert TokenStore(settings.token_store_path).get("acme") is None
    assert leaked(str(err.value), [CLIENT_SECRET, *browser.codes]) == []


def test_unregistered_redirect_uri_is_explained(sandbox, redirect_uri, settings):
    other = f"http://127.0.0.1:{free_port()}/oauth2/callback"
    browser = Browser(sandbox.merchants[0])
    with pytest.raises(az.RedirectUriRejected) as err:
        az.authorize_merchant(settings, "acme", redirect_uri=other, timeout=30, open_browser=False,
                              on_url=browser)
    message = str(err.value)
    assert f"Register exactly {other} as a redirect URI of client id '{CLIENT_ID}'" in message
    assert "is not registered for this app" in message  # the sandbox's own words
    assert "--redirect-uri" in message
    assert browser.calls == 0  # nobody is sent to a page that cannot redirect back


def test_cli_unregistered_redirect_uri_exits_2(sandbox, redirect_uri, settings, monkeypatch, capsys):
    monkeypatch.setattr(az, "load_settings", lambda: settings)
    other = f"http://localhost:{free_port()}/cb"
    assert cli.main(["authorize", "acme", "--redirect-uri", other, "--no-browser", "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert f"Register exactly {other}" in err
    assert CLIENT_SECRET not in err


def test_no_callback_times_out_with_advice(sandbox, redirect_uri, settings):
    # a browser that never comes back (e.g. it showed an error page, or nobody approved)
    with pytest.raises(az.CallbackTimeout) as err:
        az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=0.5, open_browser=False,
                              on_url=lambda url: None)
    message = str(err.value)
    assert f"no answer reached the callback server at {redirect_uri} within 0.5 s" in message
    assert f"register exactly {redirect_uri}" in message and "--timeout" in message


def test_a_redirect_that_arrived_in_time_is_completed_not_timed_out(sandbox, redirect_uri, settings):
    """The deadline passes while the code is being exchanged (a slow token endpoint): the command
    finishes the exchange and reports success, rather than a timeout with a token stored behind
    the user's back."""
    sandbox.faults.add("slow", endpoint="oauth_token", delay=1.0)
    browser = Browser(sandbox.merchants[0])
    threads: list[threading.Thread] = []

    def start_browser(url: str) -> None:
        threads.append(threading.Thread(target=browser._run, args=(url,), name=BROWSER_THREAD))
        threads[0].start()
        # return once the token endpoint has the code (its answer is held back by the fault)
        for _ in range(3000):
            if sandbox.request_count(endpoint="oauth_token") >= 1:
                return
            time.sleep(0.01)
        raise AssertionError("the code never reached the token endpoint")

    result = az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=0.01,
                                   open_browser=False, on_url=start_browser)
    threads[0].join(30)
    assert browser.error is None and browser.final.status_code == 200
    assert result.scopes == ALL_SCOPES
    assert TokenStore(settings.token_store_path).get("acme") is not None


def test_each_run_sends_a_fresh_state(sandbox, redirect_uri, settings):
    states = []

    def record(url: str) -> None:
        states.append(parse_qs(urlsplit(url).query)["state"][0])

    for _ in range(2):
        with pytest.raises(az.CallbackTimeout):
            az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=0.2, open_browser=False,
                                  on_url=record)
    assert len(states) == 2 and states[0] != states[1] and min(len(s) for s in states) >= 32


def test_callback_port_in_use(sandbox, redirect_uri, settings):
    port = urlsplit(redirect_uri).port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            az.authorize_merchant(settings, "acme", redirect_uri=redirect_uri, timeout=1, open_browser=False)


def test_wrong_client_secret_is_explained(sandbox, redirect_uri, settings):
    wrong = Settings(**{**vars(settings), "client_secret": "not-the-client-secret-77"})
    with pytest.raises(az.CodeExchangeFailed, match="HTTP 401 invalid_client") as err:
        az.authorize_merchant(wrong, "acme", redirect_uri=redirect_uri, timeout=30, open_browser=False,
                              on_url=Browser(sandbox.merchants[0]))
    assert "client_secret in .dlt/secrets.toml" in str(err.value)
    assert "not-the-client-secret-77" not in str(err.value)


def test_the_secret_checks_can_fail():
    """`leaked` and `command_logs` are what the no-secret assertions rest on: they must see a leak."""
    assert leaked("token=abcdefghijklmnop", ["abcdefghijklmnopqrstu"]) == ["abcdefghijklmnopqrstu"]
    assert leaked("nothing here", ["abcdefghijklmnopqrstu"]) == []

    class Record:
        def __init__(self, thread: str) -> None:
            self.name, self.threadName = "pipelines.authorize", thread

        def getMessage(self) -> str:  # noqa: N802 (logging's name)
            return "code=abcdefghijklmnopqrstu"

    class Caplog:
        records = [Record("MainThread"), Record(BROWSER_THREAD)]

    assert leaked(command_logs(Caplog), ["abcdefghijklmnopqrstu"]) == ["abcdefghijklmnopqrstu"]
