"""The HTTP server and :class:`Sandbox`, the in-process Python API.

    from instamojo_sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(seed=1, profile="small", page_size=10)) as sb:
        sb.base_url                      # http://127.0.0.1:<free port>
        sb.advance(days=1)               # the data clock
        sb.truth(sb.merchants[0], "payments")
        sb.faults.add("error", endpoint="payments", status=503, count=2)
        sb.anomalies.inject("orphan_payment")
        sb.stats(); sb.request_log(); sb.revoke(merchant=sb.merchants[0])

HTTP/1.1 with keep-alive, one thread per connection, Nagle off, a strict and bounded request
parser (:mod:`instamojo_sandbox.httpd`); each response is written with one gathered write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import threading
import time
from typing import Any, Self

from .admin import Admin
from .anomalies import Anomalies
from .api import Api, Request, Response, canonical, json_response
from .config import ALL_SCOPES, SORT_ORDERS, App, SandboxConfig
from .faults import FaultSet, RateLimits, RequestLog, Stats
from .httpd import Limits, Server
from .oauth import OAuthServer
from .store import Store
from .timeutil import from_us, iso, to_us


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    if value in (0, 1):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


def _positive_int(value) -> int:
    n = int(value)
    if n < 1 or isinstance(value, bool):
        raise ValueError(f"must be a whole number ≥ 1, got {value!r}")
    return n


def _positive_or_none(value) -> float | None:
    if value is None:
        return None
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be positive (or null for no limit), got {value!r}")
    return number


def _burst(value) -> int | None:
    return None if value is None else _positive_int(value)


def _seconds(value) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"must be ≥ 0 seconds, got {value!r}")
    return number


def _sort_order(value) -> str:
    if value not in SORT_ORDERS:
        raise ValueError(f"unknown sort_order {value!r}; choose one of {list(SORT_ORDERS)}")
    return value


def _log_size(value) -> int:
    n = int(value)
    if n < 0:
        raise ValueError(f"request_log_size must be ≥ 0, got {value!r}")
    return n


#: Settings that may change while the sandbox runs (``Sandbox.configure``, PATCH /_sandbox/config),
#: each with the function that checks and converts a new value.
RUNTIME_SETTINGS = {
    "page_size": _positive_int,
    "honour_limit": _bool,
    "max_limit": _positive_int,
    "sort_order": _sort_order,
    "rotate_refresh_tokens": _bool,
    "access_token_ttl": _seconds,
    "refresh_token_ttl": _seconds,
    "code_ttl": _seconds,
    "rate_limit": _positive_or_none,
    "rate_limit_burst": _burst,
    "app_rate_limit": _positive_or_none,
    "app_rate_limit_burst": _burst,
    "latency": _seconds,
    "request_log_size": _log_size,
}


class Sandbox:
    """A running (or ready to run) Instamojo sandbox: data, OAuth, faults, HTTP server.

    The constructor binds the socket (so ``base_url`` is known) and generates the data; ``start``
    serves in a background thread; ``stop`` closes everything. Use it as a context manager.
    ``config`` is copied: ``Sandbox.configure`` changes this sandbox's copy only.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides):
        config = dataclasses.replace(config or SandboxConfig(), **overrides)
        self.config = config
        self._server = Server((config.host, config.port), self, _limits(config))
        host, port = self._server.server_address[:2]
        if not isinstance(host, str):
            raise RuntimeError(f"the sandbox's socket is bound to {host!r}, not a host name or address")
        self.port = port
        self.base_url = (config.public_url or f"http://{_url_host(host)}:{port}").rstrip("/")
        try:
            self._setup(config)
        except BaseException:
            self._server.server_close()
            raise

    def _setup(self, config: SandboxConfig) -> None:
        started = time.perf_counter()
        self.store = Store(config, self.base_url)
        #: seconds spent generating the initial dataset
        self.generation_seconds = time.perf_counter() - started
        self.oauth = OAuthServer(config, [s.username for s in self.store.states])
        #: the fault rules: ``sb.faults.add(kind, **params)``, ``remove(id)``, ``clear()``, ``list()``
        self.faults = FaultSet(config.fault_seed if config.fault_seed is not None else config.seed)
        #: request statistics (see also :meth:`stats`, :meth:`reset_stats`, :meth:`request_count`)
        self.request_stats = Stats()
        #: anomalies: ``sb.anomalies.inject(kind, merchant=None, **params)``, ``list()``
        self.anomalies = Anomalies(self.store, lambda: self.config.page_size, lambda: self.config.sort_order)
        #: the per-token and per-app rate limits (rebuilt when they are reconfigured)
        self.rate_limits = RateLimits(config.rate_limit, config.rate_limit_burst, config.app_rate_limit,
                                      config.app_rate_limit_burst)
        #: every API request with its time (see :meth:`request_log`)
        self.requests = RequestLog(config.request_log_size)
        self.api = Api(self)
        self.admin = Admin(self)
        self._thread: threading.Thread | None = None
        self._serving = False
        for rule in config.faults:
            rule = dict(rule)
            self.faults.add(rule.pop("kind"), **rule)
        for anomaly in config.anomalies:
            anomaly = dict(anomaly)
            self.anomalies.inject(anomaly.pop("kind"), **anomaly)

    # Life cycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name=f"instamojo-sandbox-{self.port}",
                                            daemon=True)
            # set before the thread runs, so that an immediate stop() still shuts the loop down
            self._serving = True
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another thread."""
        self._serving = True
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self._serving = False

    def stop(self) -> None:
        """Stop serving, close every connection and the socket. Safe to call more than once."""
        if self._serving:
            self._server.shutdown()  # returns once serve_forever has left its loop
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        if self.store.frozen:
            gc.unfreeze()  # let the collector reclaim the dataset once this sandbox is dropped

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # HTTP ---------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Answer one request (the HTTP server calls this; tests may too)."""
        path = canonical(req.path)
        if path.startswith("/_sandbox/"):
            return self.admin.handle(Request(req.method, path, req.query, req.headers, req.body, req.client_ip))
        if self.config.latency:
            time.sleep(self.config.latency)
        resp = self._handle_api(req, path)
        self.request_stats.record(resp.merchant, resp.endpoint, resp.status)
        self.requests.record(resp.at if resp.at is not None else time.monotonic(), resp.merchant, resp.client_id,
                             resp.endpoint, req.method, resp.status, resp.fault)
        return resp

    def _handle_api(self, req: Request, path: str) -> Response:
        if path.startswith("/v2/"):
            if req.method != "GET":
                resp = json_response(405, {"detail": f'Method "{req.method}" not allowed.'}, [("Allow", "GET")])
                resp.endpoint = "unknown"
            else:
                found = self.api.resource(req, path)
                resp = found if found is not None else json_response(404, {"detail": "Not found."})
        elif path in ("/oauth2/authorize/", "/oauth2/token/"):
            name = "oauth_authorize" if path == "/oauth2/authorize/" else "oauth_token"
            rule = self.faults.match(name, path, None)
            if rule is not None and rule.kind == "error":
                headers = [("Retry-After", "1")] if rule.status in (429, 503) else []
                resp = json_response(rule.status, {"detail": "Service temporarily unavailable."}, headers)
                resp.fault = "error"
            elif rule is not None and rule.kind == "api_error":
                resp = json_response(200, rule.api_error_body())
                resp.fault = "api_error"
            else:
                resp = self.api.authorize(req) if name == "oauth_authorize" else self.api.token(req)
                if rule is not None:
                    resp.fault = rule.kind if rule.kind in ("drop", "malformed", "slow") else None
                    resp.delay = float(rule.delay) if rule.kind == "slow" else 0.0
            resp.endpoint = name
        else:
            resp = json_response(404, {"detail": "Not found."})
        return resp

    def url(self, path: str = "/") -> str:
        """An absolute URL on this sandbox."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # Data and clock -----------------------------------------------------------------------
    @property
    def merchants(self) -> list[str]:
        """Merchant usernames, in order."""
        return [s.username for s in self.store.states]

    def merchant_choices(self) -> list[tuple[str, str]]:
        """(username, label) pairs for the consent page."""
        return [(s.username, f"{s.username} ({s.ctx.full_name})") for s in self.store.states]

    def merchant_list(self) -> list[dict]:
        """Each merchant's identity and visible record counts."""
        counts = self.store.counts()
        return [
            {"username": s.username, "account_id": s.ctx.account_id, "full_name": s.ctx.full_name,
             "counts": counts[s.username]}
            for s in self.store.states
        ]

    @property
    def now(self) -> dt.datetime:
        """The sandbox clock (aware UTC datetime)."""
        return from_us(self.store.now)

    def advance(self, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> dt.datetime:
        """Move the clock forward; new records appear, pending ones resolve, payouts are made."""
        self.store.advance(days=days, hours=hours, minutes=minutes, seconds=seconds)
        return self.now

    def advance_to(self, moment: dt.datetime) -> dt.datetime:
        """Move the clock forward to ``moment`` (aware datetime)."""
        self.store.advance_to(to_us(moment))
        return self.now

    def truth(self, merchant: str | None, endpoint: str):
        """Ground truth: the records of ``endpoint`` exactly as served now (see Store.truth)."""
        return self.store.truth(merchant, endpoint)

    def relations(self, merchant: str | None = None) -> dict:
        """Ground truth: payouts ↔ payments (settled, held, released, refunded) and anomalies."""
        rel = self.store.relations(merchant)
        rel["anomalies"] = self.anomalies.list(self.store.state(merchant).username)
        return rel

    # OAuth --------------------------------------------------------------------------------
    @property
    def demo_app(self) -> App | None:
        """The documented demo app, if registered."""
        from .config import DEMO_APP

        return self.oauth.apps.get(DEMO_APP.client_id)

    def register_app(self, app: App) -> App:
        """Register (or replace) an OAuth app at run time."""
        return self.oauth.register_app(app)

    def app_list(self) -> list[dict]:
        """Registered apps (sandbox credentials, so the secret is shown)."""
        return [{"client_id": a.client_id, "client_secret": a.client_secret, "name": a.name,
                 "redirect_uris": list(a.redirect_uris), "scopes": list(a.scopes)}
                for a in self.oauth.apps.values()]

    def issue_tokens(self, merchant: str, scopes=None, client_id: str | None = None) -> dict:
        """Tokens for ``merchant`` without the consent page (a shortcut for scripts)."""
        return self.oauth.issue(merchant, client_id=client_id, scopes=scopes)

    def issue_tokens_bulk(self, merchants=None, scopes=None, client_id: str | None = None) -> list[dict]:
        """Tokens for many merchants at once (None = every merchant, in order), without the
        consent page: a list of ``{"merchant", "account_id", "access_token", "refresh_token",
        "token_type", "expires_in", "scope"}``. Unknown merchants raise KeyError before any
        token is issued."""
        names = self.merchants if merchants is None else [str(m) for m in merchants]
        states = [self.store.state(m) for m in names]  # KeyError for an unknown one, before issuing
        out = []
        for state in states:
            tokens = self.oauth.issue(state.username, client_id=client_id, scopes=scopes)
            out.append({"merchant": state.username, "account_id": state.ctx.account_id, **tokens})
        return out

    def revoke(self, merchant: str | None = None, client_id: str | None = None, token: str | None = None) -> int:
        """Revoke one token, or every token of a merchant and/or client; returns how many."""
        return self.oauth.revoke(merchant=merchant, client_id=client_id, token=token)

    # Stats --------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Request counts: ``{"total", "merchants": {m: {endpoint: {"requests", "statuses"}}}}``."""
        return self.request_stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the request counts."""
        self.request_stats.reset()

    def request_count(self, merchant: str | None = None, endpoint: str | None = None,
                      status: int | None = None) -> int:
        """Requests so far matching every given criterion (None = any)."""
        return self.request_stats.count(merchant, endpoint, status)

    # Request log --------------------------------------------------------------------------
    def request_log(self, since: int = 0, limit: int | None = None) -> list[dict]:
        """API requests recorded after sequence number ``since``, oldest first: each
        ``{"seq", "t", "wall", "merchant", "client_id", "endpoint", "method", "status",
        "fault"}``. ``t`` is time.monotonic() in this process when the rate limits judged the
        request (so a count over any one-second window of ``t`` is what they enforced);
        ``wall`` the Unix time. The log keeps the newest ``request_log_size`` requests."""
        return self.requests.page(since, limit)["requests"]

    def clear_request_log(self) -> None:
        """Forget the logged requests (sequence numbers keep counting)."""
        self.requests.clear()

    # Run-time settings --------------------------------------------------------------------
    def settings(self) -> dict:
        """The run-time settings and the data shape."""
        c = self.config
        out = {name: getattr(c, name) for name in RUNTIME_SETTINGS}
        out.update({"seed": c.seed, "profile": c.profile, "merchants": self.merchants, "days": c.n_days,
                    "now": iso(self.store.now), "base_url": self.base_url, "scopes": list(ALL_SCOPES)})
        return out

    def configure(self, **changes) -> dict:
        """Change run-time settings (see RUNTIME_SETTINGS); returns the new settings. Every
        value is checked before any is applied."""
        unknown = set(changes) - set(RUNTIME_SETTINGS)
        if unknown:
            raise ValueError(f"not run-time settings: {sorted(unknown)}; these are: {list(RUNTIME_SETTINGS)}")
        converted: dict[str, Any] = {}  # each value of its setting's type (RUNTIME_SETTINGS)
        for name, value in changes.items():
            try:
                converted[name] = RUNTIME_SETTINGS[name](value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name}: {err}") from None
        limits = RateLimits(converted.get("rate_limit", self.config.rate_limit),
                            converted.get("rate_limit_burst", self.config.rate_limit_burst),
                            converted.get("app_rate_limit", self.config.app_rate_limit),
                            converted.get("app_rate_limit_burst", self.config.app_rate_limit_burst))
        for name, value in converted.items():
            setattr(self.config, name, value)
        if {"rate_limit", "rate_limit_burst", "app_rate_limit", "app_rate_limit_burst"} & set(converted):
            self.rate_limits = limits  # fresh buckets and windows
        if "request_log_size" in converted:
            self.requests.resize(converted["request_log_size"])
        return self.settings()


def _limits(config: SandboxConfig) -> Limits:
    return Limits(idle_timeout=config.idle_timeout, request_timeout=config.request_timeout,
                  max_connections=config.max_connections)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
