"""The admin API, the command line, and starting/stopping."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from instamojo_sandbox import DEMO_APP, App, Sandbox, SandboxConfig
from instamojo_sandbox.api import Request
from tests.oauth_flow import obtain_tokens


def test_admin_index_merchants_and_config(sandbox):
    index = requests.get(sandbox.url("/_sandbox/"), timeout=30).json()
    assert index["base_url"] == sandbox.base_url and "POST /_sandbox/clock/advance" in index["routes"]
    merchants = requests.get(sandbox.url("/_sandbox/merchants"), timeout=30).json()
    assert [m["username"] for m in merchants] == sandbox.merchants
    assert merchants[0]["counts"]["payments"] == len(sandbox.truth(sandbox.merchants[0], "payments"))
    config = requests.get(sandbox.url("/_sandbox/config"), timeout=30).json()
    assert config["page_size"] == 25 and config["sort_order"] == "newest_first"
    changed = requests.patch(sandbox.url("/_sandbox/config"), json={"page_size": 3, "sort_order": "oldest_first",
                                                                    "rotate_refresh_tokens": True}, timeout=30).json()
    assert (changed["page_size"], changed["sort_order"], changed["rotate_refresh_tokens"]) == (3, "oldest_first", True)
    bad = requests.patch(sandbox.url("/_sandbox/config"), json={"seed": 9}, timeout=30)
    assert bad.status_code == 400 and "not run-time settings" in bad.json()["error"]
    assert requests.get(sandbox.url("/_sandbox/nothing"), timeout=30).status_code == 404


def test_admin_tokens_shortcut_and_apps(sandbox):
    tokens = requests.post(sandbox.url("/_sandbox/tokens"), json={"merchant": sandbox.merchants[1],
                                                                  "scopes": "payouts:read"}, timeout=30).json()
    assert tokens["scope"] == "payouts:read"
    resp = requests.get(sandbox.url("/v2/payouts/"), headers={"Authorization": f"Bearer {tokens['access_token']}"},
                        timeout=30)
    assert resp.status_code == 200
    apps = requests.get(sandbox.url("/_sandbox/apps"), timeout=30).json()
    assert apps[0]["client_id"] == DEMO_APP.client_id and apps[0]["redirect_uris"] == list(DEMO_APP.redirect_uris)


def test_admin_answers_loopback_only(sandbox):
    resp = sandbox.handle(Request("GET", "/_sandbox/clock", [], {}, b"", "10.1.2.3"))
    assert resp.status == 403


def test_start_stop_is_clean_and_repeatable():
    for _ in range(3):
        with Sandbox(SandboxConfig(profile="small", merchants=1, days=5)) as sb:
            session = requests.Session()  # a keep-alive connection left open by the client
            assert session.get(sb.url("/_sandbox/clock"), timeout=30).status_code == 200
        try:
            session.get(sb.url("/_sandbox/clock"), timeout=5)
            reachable = True
        except requests.exceptions.ConnectionError:
            reachable = False
        assert not reachable


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0 and "serve" in out.stdout and "advance" in out.stdout
    out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "serve", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert "--payments" in out.stdout and "--rotate-refresh-tokens" in out.stdout and "--app" in out.stdout


def test_cli_serve_prints_the_url_first_and_registers_apps():
    proc = subprocess.Popen(
        [sys.executable, "-m", "instamojo_sandbox", "--size", "small", "--port", "0", "--page-size", "7",
         "--app", "cli-app", "cli-secret", "http://127.0.0.1:9100/cb", "http://127.0.0.1:9101/cb",
         "--redirect-uri", "http://127.0.0.1:9200/demo-cb"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines[0] == f"demo app: client_id={DEMO_APP.client_id} client_secret={DEMO_APP.client_secret}"
        assert lines[1].startswith("demo app redirect URIs: ") and "http://127.0.0.1:9200/demo-cb" in lines[1]
        assert lines[2].startswith("app: client_id=cli-app")
        assert lines[3].startswith("merchant: priya_handlooms")
        app = App("cli-app", "cli-secret", ("http://127.0.0.1:9101/cb",))
        tokens = obtain_tokens(base_url, "chai_point_co", app=app)
        body = requests.get(f"{base_url}/v2/payments/", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                            timeout=30).json()
        assert len(body["payments"]) == 7
        assert obtain_tokens(base_url, "priya_handlooms", redirect_uri="http://127.0.0.1:9200/demo-cb")
        out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "stats", "--url", base_url],
                             capture_output=True, text=True, timeout=60, check=True)
        assert '"chai_point_co"' in out.stdout
        out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "revoke", "--url", base_url, "--merchant",
                              "chai_point_co"], capture_output=True, text=True, timeout=60, check=True)
        assert '"revoked": 2' in out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_cli_against_no_sandbox_says_so():
    out = subprocess.run([sys.executable, "-m", "instamojo_sandbox", "advance", "--url", "http://127.0.0.1:9",
                          "--days", "1"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "no sandbox at" in out.stderr


def test_bulk_tokens_for_every_merchant_or_a_list(sandbox_factory):
    sb = sandbox_factory(merchants=5, days=3)
    everyone = requests.post(sb.url("/_sandbox/tokens"), json={"all": True}, timeout=30).json()
    assert [t["merchant"] for t in everyone] == sb.merchants
    assert len({t["refresh_token"] for t in everyone}) == 5
    for tokens in everyone:
        assert tokens["account_id"] == sb.truth(tokens["merchant"], "user_contact")["account_id"]
        who = requests.get(sb.url("/v2/user-info/"), headers={"Authorization": f"Bearer {tokens['access_token']}"},
                           timeout=30).json()
        assert who["username"] == tokens["merchant"]
    some = requests.post(sb.url("/_sandbox/tokens"), json={"merchants": sb.merchants[3:], "scopes": "payouts:read"},
                         timeout=30).json()
    assert [t["merchant"] for t in some] == sb.merchants[3:] and {t["scope"] for t in some} == {"payouts:read"}
    # a refresh token from the bulk form works at the token endpoint like any other
    fresh = requests.post(sb.url("/oauth2/token/"), data={"grant_type": "refresh_token",
                                                           "refresh_token": some[0]["refresh_token"],
                                                           "client_id": DEMO_APP.client_id,
                                                           "client_secret": DEMO_APP.client_secret}, timeout=30)
    assert fresh.status_code == 200 and fresh.json()["scope"] == "payouts:read"


def test_bulk_tokens_refuse_an_unknown_merchant_before_issuing_any(sandbox):
    before = sandbox.oauth.revoke(merchant=sandbox.merchants[0])  # nothing issued yet
    resp = requests.post(sandbox.url("/_sandbox/tokens"), json={"merchants": [sandbox.merchants[0], "nobody"]},
                         timeout=30)
    assert resp.status_code == 400 and "nobody" in resp.json()["error"]
    assert sandbox.oauth.revoke(merchant=sandbox.merchants[0]) == before == 0
    assert requests.post(sandbox.url("/_sandbox/tokens"), json={"merchants": "all"}, timeout=30).status_code == 400
    assert requests.post(sandbox.url("/_sandbox/tokens"), json={}, timeout=30).status_code == 400
    assert [t["merchant"] for t in sandbox.issue_tokens_bulk()] == sandbox.merchants
    assert [t["merchant"] for t in sandbox.issue_tokens_bulk([sandbox.merchants[1]])] == [sandbox.merchants[1]]


def test_cli_lists_a_few_merchants_and_sums_up_the_rest():
    proc = subprocess.Popen([sys.executable, "-m", "instamojo_sandbox", "--size", "small", "--merchants", "14",
                             "--days", "2", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        lines = []
        while not lines or not lines[-1].startswith("clock:"):
            lines.append(proc.stdout.readline().strip())
        merchant_lines = [line for line in lines if line.startswith("merchant: ")]
        assert len(merchant_lines) == 10
        summary = next(line for line in lines if line.startswith("merchants: "))
        assert summary.startswith("merchants: 4 more (merchant_11 … merchant_14)")
        assert len(requests.get(f"{base_url}/_sandbox/merchants", timeout=30).json()) == 14
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
