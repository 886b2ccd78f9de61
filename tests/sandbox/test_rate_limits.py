"""The per-app rate limit (all tokens of one OAuth app together) beside the per-token one, and
the request log that shows what they let through. No timing is asserted: the log's instants
are the limits' own, so a window count over them is exact."""

from __future__ import annotations

import threading

import requests

from instamojo_sandbox import App
from instamojo_sandbox.__main__ import build_parser, config_from_args
from instamojo_sandbox.faults import RateLimits, WindowLimiter

OTHER_APP = App("other-app", "other-secret", ("http://127.0.0.1:9300/cb",))


def _get(sb, token, path="/v2/payouts/"):
    return requests.get(sb.url(path), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The most instants in any half-open window [t, t + window)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] - t < window:
            j += 1
        best = max(best, j - i)
    return best


def test_the_app_limit_counts_every_token_of_the_app_together(sandbox_factory):
    sb = sandbox_factory(app_rate_limit=0.1, app_rate_limit_burst=3, apps=(OTHER_APP,))
    a, b = (sb.issue_tokens(m)["access_token"] for m in sb.merchants)
    assert [_get(sb, a).status_code, _get(sb, b).status_code, _get(sb, a).status_code] == [200, 200, 200]
    limited = _get(sb, b)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-Sandbox-Rate-Limit"] == "app"
    assert "throttled" in limited.json()["detail"]
    assert _get(sb, a).status_code == 429  # the other merchant's token is refused too: one app
    other = sb.issue_tokens(sb.merchants[0], client_id=OTHER_APP.client_id)["access_token"]
    assert _get(sb, other).status_code == 200  # another app has its own window
    sb.configure(app_rate_limit=None)
    assert _get(sb, a).status_code == 200


def test_the_per_token_limit_still_applies_under_the_app_limit(sandbox_factory):
    sb = sandbox_factory(rate_limit=0.1, rate_limit_burst=2, app_rate_limit=0.1, app_rate_limit_burst=3)
    a, b = (sb.issue_tokens(m)["access_token"] for m in sb.merchants)
    assert [_get(sb, a).status_code for _ in range(2)] == [200, 200]
    refused = _get(sb, a)
    assert refused.status_code == 429 and refused.headers["X-Sandbox-Rate-Limit"] == "token"
    # the token's refusal did not use the app's window: b still gets the third slot
    assert _get(sb, b).status_code == 200
    refused = _get(sb, b)
    assert refused.status_code == 429 and refused.headers["X-Sandbox-Rate-Limit"] == "app"


def test_the_request_log_never_shows_more_than_the_app_limit_in_any_second(sandbox_factory):
    rate = 20
    sb = sandbox_factory(app_rate_limit=rate)
    tokens = [t["access_token"] for t in sb.issue_tokens_bulk()]
    stop = threading.Event()
    counts = {"ok": 0, "limited": 0}
    lock = threading.Lock()

    def hammer(token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while not stop.is_set():
            status = session.get(sb.url("/v2/user-info/"), timeout=30).status_code
            with lock:
                counts["ok" if status == 200 else "limited"] += 1
                enough = counts["ok"] >= 3 * rate and counts["limited"] >= 10
                if enough or counts["ok"] + counts["limited"] >= 20_000:
                    stop.set()

    threads = [threading.Thread(target=hammer, args=(tokens[i % len(tokens)],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    log = sb.request_log()
    admitted = [e["t"] for e in log if e["endpoint"] == "user_info" and e["status"] == 200]
    refused = [e for e in log if e["status"] == 429]
    assert len(admitted) >= 3 * rate and refused, "the clients asked for more than the limit"
    assert max_in_any_window(admitted) <= rate
    assert {e["client_id"] for e in log} == {sb.demo_app.client_id}
    assert {e["merchant"] for e in log if e["status"] == 200} == set(sb.merchants)  # both were served


def test_a_request_the_app_limit_refuses_does_not_use_up_its_token():
    limits = RateLimits(token_rate=0.001, token_burst=1, app_rate=0.001, app_burst=1)  # nothing refills here
    assert limits.admit("token-b", "app-1")[1] is None  # app-1's one request
    assert limits.admit("token-a", "app-1")[1:] == ("app", 1000)  # refused by the app limit...
    assert limits.admit("token-a", "app-2")[1] is None  # ...so token-a still has its one request
    assert limits.admit("token-a", "app-3")[1] == "token"  # and now it is used


def test_the_window_limiter_with_a_burst():
    limiter = WindowLimiter(rate=2, burst=4)  # at most 4 in any 2 seconds
    assert limiter.window == 2.0
    assert [limiter.take("app", t) for t in (0.0, 0.1, 0.2, 0.3)] == [None] * 4
    assert limiter.take("app", 1.9) == 1  # the first leaves the window at 2.0
    assert limiter.take("app", 2.0) is None
    assert limiter.take("other", 2.0) is None


def test_the_request_log_in_process_and_over_the_admin_api(sandbox, client):
    sandbox.clear_request_log()
    client.get("/v2/payments/")
    client.get("/v2/payments/", page=999)
    requests.get(sandbox.url("/v2/orders/"), timeout=30)  # no token
    requests.get(sandbox.url("/_sandbox/clock"), timeout=30)  # admin: not an API request, not logged
    log = sandbox.request_log()
    assert [(e["endpoint"], e["status"], e["merchant"]) for e in log] == [
        ("payments", 200, client.merchant), ("payments", 404, client.merchant), ("orders", 401, None)]
    assert log[0]["client_id"] == sandbox.demo_app.client_id and log[2]["client_id"] is None
    assert log[0]["method"] == "GET" and log[0]["fault"] is None
    assert log[0]["t"] <= log[1]["t"] <= log[2]["t"] and log[0]["wall"] > 1.7e9
    assert [e["seq"] for e in log] == list(range(log[0]["seq"], log[0]["seq"] + 3))
    url = sandbox.url("/_sandbox/requests")
    page = requests.get(url, params={"since": log[0]["seq"] - 1, "limit": 2}, timeout=30).json()
    assert [e["seq"] for e in page["requests"]] == [log[0]["seq"], log[1]["seq"]] and page["more"] is True
    rest = requests.get(url, params={"since": page["next"]}, timeout=30).json()
    assert [e["seq"] for e in rest["requests"]] == [log[2]["seq"]] and rest["more"] is False
    assert requests.get(url, params={"since": rest["next"]}, timeout=30).json()["requests"] == []
    assert requests.get(url, params={"limit": 0}, timeout=30).status_code == 400
    sandbox.faults.add("error", endpoint="payouts", status=503)
    client.get("/v2/payouts/")
    assert sandbox.request_log(since=rest["next"])[0]["fault"] == "error"
    assert requests.delete(url, timeout=30).json() == {"cleared": True}
    assert sandbox.request_log() == []


def test_the_request_log_is_bounded(sandbox_factory, make_client):
    sb = sandbox_factory(request_log_size=5)
    c = make_client(sb)  # the consent flow: the page, the form and the token exchange are logged
    for _ in range(7):
        c.get("/v2/user-info/")
    page = sb.requests.page()
    assert len(page["requests"]) == 5 and page["total"] == 10 and page["dropped"] == 5
    assert [e["seq"] for e in page["requests"]] == [6, 7, 8, 9, 10]
    assert sb.request_log(since=2)[0]["seq"] == 6  # what fell out is gone
    sb.configure(request_log_size=2)
    assert [e["seq"] for e in sb.request_log()] == [9, 10]


def test_token_exchanges_are_logged_with_their_app(sandbox, make_client):
    sandbox.clear_request_log()
    make_client(sandbox, sandbox.merchants[1])
    token = [e for e in sandbox.request_log() if e["endpoint"] == "oauth_token"]
    assert [(e["merchant"], e["client_id"], e["status"], e["method"]) for e in token] == [
        (sandbox.merchants[1], sandbox.demo_app.client_id, 200, "POST")]


def test_rate_limit_settings_over_the_admin_api_and_the_command_line(sandbox):
    url = sandbox.url("/_sandbox/config")
    changed = requests.patch(url, json={"app_rate_limit": 50, "app_rate_limit_burst": 10}, timeout=30).json()
    assert (changed["app_rate_limit"], changed["app_rate_limit_burst"]) == (50, 10)
    assert sandbox.rate_limits.per_app.window == 0.2
    assert requests.patch(url, json={"app_rate_limit": -1}, timeout=30).status_code == 400
    assert requests.patch(url, json={"app_rate_limit_burst": 0}, timeout=30).status_code == 400
    assert sandbox.settings()["app_rate_limit"] == 50  # a refused change changes nothing
    requests.patch(url, json={"app_rate_limit": None}, timeout=30)
    assert sandbox.rate_limits.per_app is None
    args = build_parser().parse_args(["serve", "--app-rate-limit", "25", "--app-rate-limit-burst", "5",
                                      "--request-log-size", "1000"])
    config = config_from_args(args)
    assert (config.app_rate_limit, config.app_rate_limit_burst, config.request_log_size) == (25, 5, 1000)
