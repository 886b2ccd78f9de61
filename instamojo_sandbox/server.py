"""The HTTP server and :class:`Sandbox`, the in-process Python API.

    from instamojo_sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(seed=1, profile="small", page_size=10)) as sb:
        sb.base_url                      # http://127.0.0.1:<free port>
        sb.advance(days=1)               # the data clock
        sb.truth(sb.merchants[0], "payments")
        sb.faults.add("error", endpoint="payments", status=503, count=2)
        sb.anomalies.inject("orphan_payment")
        sb.stats(); sb.revoke(merchant=sb.merchants[0])

HTTP/1.1 with keep-alive, one thread per connection (``ThreadingHTTPServer``), Nagle off;
each response is written with a single ``sendall``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from .admin import Admin
from .anomalies import Anomalies
from .api import Api, Request, Response, canonical, json_response
from .config import ALL_SCOPES, SORT_ORDERS, App, SandboxConfig
from .faults import FaultSet, RateLimiter, Stats
from .oauth import OAuthServer
from .store import Store
from .timeutil import from_us, iso, to_us

_REASONS = {s.value: s.phrase for s in HTTPStatus}

#: Settings that may change while the sandbox runs (``Sandbox.configure``, PATCH /_sandbox/config).
RUNTIME_SETTINGS = ("page_size", "sort_order", "rotate_refresh_tokens", "access_token_ttl",
                    "refresh_token_ttl", "code_ttl", "rate_limit", "rate_limit_burst", "latency")


class Headers(dict):
    """Request headers, keys lower-cased; ``get`` is case-insensitive."""

    def get(self, name: str, default=None):  # type: ignore[override]
        return super().get(name.lower(), default)


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Handler(BaseHTTPRequestHandler):
    """A lean HTTP/1.1 request loop.

    ``BaseHTTPRequestHandler.parse_request`` parses headers with the e-mail package, which costs
    more than serving a pre-serialized page; a benchmark makes thousands of requests per second
    on keep-alive connections, so the request line and headers are parsed by hand here.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "InstamojoSandbox/1.0"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        # Quiet: request lines would carry codes and state; nothing secret is ever logged.
        pass

    def handle_one_request(self) -> None:
        rfile = self.rfile
        try:
            line = rfile.readline(_MAX_LINE + 1)
        except (ConnectionError, OSError):
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        if len(line) > _MAX_LINE:
            self._fail(414, "Request line too long.")
            return
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._fail(400, "Bad request line.")
            return
        method, target, version = parts
        headers = Headers()
        for _ in range(_MAX_HEADERS + 1):
            raw = rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                self._fail(400, "Bad header line.")
                return
            headers[name.strip().lower()] = value.strip()
        else:
            self._fail(431, "Too many headers.")
            return
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        self.command, self.path, self.request_version, self.headers = method, target, version, headers
        if method not in _METHODS:
            self._send(json_response(405, {"detail": f'Method "{method}" not allowed.'}))
            return
        if headers.get("transfer-encoding"):
            self._fail(411, "Send the body with a Content-Length.")
            return
        length = headers.get("content-length")
        if length and headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # what curl waits for before a large body
        try:
            body = rfile.read(int(length)) if length else b""
        except ValueError:
            self._fail(400, "Bad Content-Length.")
            return
        path, _, qs = target.partition("?")
        req = Request(method, path, parse_qsl(qs, keep_blank_values=True) if qs else [], headers, body,
                      self.client_address[0])
        try:
            resp = self.server.sandbox.handle(req)  # type: ignore[attr-defined]
        except Exception as err:  # a bug must not kill the connection thread silently
            resp = json_response(500, {"detail": f"sandbox error: {type(err).__name__}: {err}"})
        self._send(resp)
        self.wfile.flush()

    def _fail(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(json_response(status, {"detail": message}))

    def _send(self, resp: Response) -> None:
        if resp.delay:
            time.sleep(resp.delay)
        fault = resp.fault
        parts = resp.parts
        if fault in ("malformed", "drop"):
            body = resp.body
            parts = (body[: max(1, len(body) // 2)],) if fault == "malformed" else (body,)
        length = sum(len(p) for p in parts)
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
            f"Server: {self.server_version}",
            f"Date: {_http_date()}",
            f"Content-Length: {length}",
        ]
        for name, value in resp.headers:
            lines.append(f"{name}: {value}")
        if fault:
            lines.append(f"X-Sandbox-Fault: {fault}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if fault == "drop":
            # the headers promise the whole body; half of it arrives, then the connection dies
            self.wfile.write(head + parts[0][: length // 2])
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        buffers = (head, *parts)
        sent = self.connection.sendmsg(buffers)  # one gathered write: no copy of the page
        total = len(head) + length
        if sent < total:
            self.connection.sendall(b"".join(buffers)[sent:])


_date_cache = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close every open keep-alive connection (so handler threads end with the server)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Sandbox:
    """A running (or ready to run) Instamojo sandbox: data, OAuth, faults, HTTP server.

    The constructor binds the socket (so ``base_url`` is known) and generates the data; ``start``
    serves in a background thread; ``stop`` closes everything. Use it as a context manager.
    ``config`` is copied: ``Sandbox.configure`` changes this sandbox's copy only.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides):
        config = dataclasses.replace(config or SandboxConfig(), **overrides)
        self.config = config
        self._server = _Server((config.host, config.port), self)
        host, port = self._server.server_address[:2]
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
        self.rate_limiter = (RateLimiter(config.rate_limit, config.rate_limit_burst)
                             if config.rate_limit else None)
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
    def start(self) -> "Sandbox":
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

    def __enter__(self) -> "Sandbox":
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
        if path.startswith("/v2/"):
            if req.method != "GET":
                resp = json_response(405, {"detail": f'Method "{req.method}" not allowed.'}, [("Allow", "GET")])
                resp.endpoint = "unknown"
            else:
                resp = self.api.resource(req, path)
                if resp is None:
                    resp = json_response(404, {"detail": "Not found."})
        elif path in ("/oauth2/authorize/", "/oauth2/token/"):
            name = "oauth_authorize" if path == "/oauth2/authorize/" else "oauth_token"
            rule = self.faults.match(name, path, None)
            if rule is not None and rule.kind == "error":
                headers = [("Retry-After", "1")] if rule.status in (429, 503) else []
                resp = json_response(rule.status, {"detail": "Service temporarily unavailable."}, headers)
                resp.fault = "error"
            else:
                resp = self.api.authorize(req) if name == "oauth_authorize" else self.api.token(req)
                if rule is not None:
                    resp.fault = rule.kind if rule.kind in ("drop", "malformed", "slow") else None
                    resp.delay = float(rule.delay) if rule.kind == "slow" else 0.0
            resp.endpoint = name
        else:
            resp = json_response(404, {"detail": "Not found."})
        self.request_stats.record(resp.merchant, resp.endpoint, resp.status)
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

    # Run-time settings --------------------------------------------------------------------
    def settings(self) -> dict:
        """The run-time settings and the data shape."""
        c = self.config
        out = {name: getattr(c, name) for name in RUNTIME_SETTINGS}
        out.update({"seed": c.seed, "profile": c.profile, "merchants": self.merchants, "days": c.n_days,
                    "now": iso(self.store.now), "base_url": self.base_url, "scopes": list(ALL_SCOPES)})
        return out

    def configure(self, **changes) -> dict:
        """Change run-time settings (see RUNTIME_SETTINGS); returns the new settings."""
        unknown = set(changes) - set(RUNTIME_SETTINGS)
        if unknown:
            raise ValueError(f"not run-time settings: {sorted(unknown)}; these are: {list(RUNTIME_SETTINGS)}")
        if "sort_order" in changes and changes["sort_order"] not in SORT_ORDERS:
            raise ValueError(f"unknown sort_order {changes['sort_order']!r}; choose one of {list(SORT_ORDERS)}")
        if "page_size" in changes and int(changes["page_size"]) < 1:
            raise ValueError("page_size must be at least 1")
        for name, value in changes.items():
            if name == "page_size":
                value = int(value)
            elif name in ("access_token_ttl", "refresh_token_ttl", "code_ttl", "latency"):
                value = float(value)
            elif name == "rotate_refresh_tokens":
                value = bool(value)
            setattr(self.config, name, value)
        if "rate_limit" in changes or "rate_limit_burst" in changes:
            rate = self.config.rate_limit
            self.rate_limiter = RateLimiter(float(rate), self.config.rate_limit_burst) if rate else None
        return self.settings()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
