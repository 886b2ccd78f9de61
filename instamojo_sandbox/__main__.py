"""Command line: ``python -m instamojo_sandbox [serve] [options]`` starts a sandbox;
``advance``, ``stats`` and ``revoke`` talk to a running one through its admin API.

On start the first line printed is the base URL (flushed at once, so a launcher can read it),
then the demo app's credentials and redirect URIs, the merchants and the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

from .config import DEMO_APP, PROFILES, SORT_ORDERS, App, SandboxConfig
from .timeutil import parse_instant

DEFAULT_URL = os.environ.get("INSTAMOJO_SANDBOX_URL", "http://127.0.0.1:8765")
COMMANDS = ("serve", "advance", "stats", "revoke")
#: merchants listed one per line at start (the rest in one line: a launcher reading only the
#: first line must not fill its pipe with a thousand)
MERCHANT_LINES = 10


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="start a sandbox (the default command)",
                       description="Start an Instamojo sandbox on 127.0.0.1 and serve until interrupted.")
    data = p.add_argument_group("data")
    data.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    data.add_argument("--size", "--profile", dest="profile", choices=sorted(PROFILES), default="demo",
                      help="dataset size: small (tests), demo (default), bench")
    data.add_argument("--merchants", type=int, help="number of merchants (overrides the size)")
    data.add_argument("--days", type=int, help="days of history before the clock (overrides the size)")
    data.add_argument("--payments-per-day", type=float, help="mean payments per merchant per day")
    data.add_argument("--payments", type=int,
                      help="exactly N payments for the first merchant over the history (benchmarks; "
                           "implies one merchant unless --merchants is given)")
    data.add_argument("--now", help="the initial clock, ISO-8601 (default 2024-11-18T00:00+05:30)")
    http = p.add_argument_group("http")
    http.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    http.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    http.add_argument("--public-url", help="base URL written into responses (default http://host:port)")
    http.add_argument("--page-size", type=int, default=50,
                      help="records per page of a request without ?limit= (default 50)")
    http.add_argument("--max-limit", type=int, default=500,
                      help="the most records ?limit= gets per page (default 500; more is capped)")
    http.add_argument("--ignore-limit", action="store_true",
                      help="ignore the limit query parameter, as an API that does not know it")
    http.add_argument("--sort-order", choices=SORT_ORDERS, default="newest_first", help="list order")
    http.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    http.add_argument("--rate-limit", type=float, help="requests per second per access token (429 beyond)")
    http.add_argument("--rate-limit-burst", type=int, help="burst size of the per-token rate limit")
    http.add_argument("--app-rate-limit", type=float,
                      help="requests per second for all tokens of one OAuth app together (429 beyond)")
    http.add_argument("--app-rate-limit-burst", type=int,
                      help="at most this many requests in any burst/rate seconds (default: the rate, rounded up)")
    http.add_argument("--request-log-size", type=int, default=200_000,
                      help="API requests kept in the request log, GET /_sandbox/requests (default 200,000)")
    http.add_argument("--idle-timeout", type=float, default=60.0,
                      help="seconds a keep-alive connection may idle between requests (default 60)")
    http.add_argument("--request-timeout", type=float, default=10.0,
                      help="seconds a started request may take to arrive whole, else 408 (default 10)")
    http.add_argument("--max-connections", type=int, default=1024,
                      help="open connections at once, one thread each; 503 beyond (default 1024)")
    data.add_argument("--build-workers", type=int,
                      help="processes that generate the data (default: one per CPU, up to 4, for a large "
                           "dataset on a machine of 4+ CPUs with 2 idle, else 1; the data are the same)")
    oauth = p.add_argument_group("oauth")
    oauth.add_argument("--rotate-refresh-tokens", action="store_true",
                       help="issue a new refresh token on every refresh and refuse the old one")
    oauth.add_argument("--access-token-ttl", type=float, default=3600.0, help="seconds (default 3600)")
    oauth.add_argument("--refresh-token-ttl", type=float, default=90 * 86400.0, help="seconds (default 90 days)")
    oauth.add_argument("--code-ttl", type=float, default=60.0, help="authorization code lifetime (default 60 s)")
    oauth.add_argument("--app", nargs="+", action="append", default=[], metavar="VALUE",
                       help="register an app: --app CLIENT_ID CLIENT_SECRET REDIRECT_URI [REDIRECT_URI ...] "
                            "(all scopes); repeatable")
    oauth.add_argument("--redirect-uri", action="append", default=[],
                       help="add a redirect URI to the demo app; repeatable")
    oauth.add_argument("--no-demo-app", action="store_true", help="do not register the demo app")
    faults = p.add_argument_group("faults and anomalies")
    faults.add_argument("--fault", action="append", default=[], metavar="JSON",
                        help='a fault rule, e.g. \'{"kind": "error", "endpoint": "payments", "status": 503, '
                             '"rate": 0.05, "count": null}\'; repeatable')
    faults.add_argument("--anomaly", action="append", default=[], metavar="JSON",
                        help='an anomaly to inject at start, e.g. \'{"kind": "orphan_payment"}\'; repeatable')


def _client_parsers(sub) -> None:
    p = sub.add_parser("advance", help="advance the clock of a running sandbox")
    p.add_argument("--url", default=DEFAULT_URL, help=f"the sandbox's base URL (default {DEFAULT_URL})")
    p.add_argument("--days", type=float, default=0)
    p.add_argument("--hours", type=float, default=0)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--to", help="advance to this ISO-8601 instant instead")
    p = sub.add_parser("stats", help="print (or reset) a running sandbox's request statistics")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--reset", action="store_true", help="reset the counts")
    p = sub.add_parser("revoke", help="revoke tokens of a running sandbox")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--merchant", help="every token of this merchant")
    p.add_argument("--client-id", help="every token of this app")
    p.add_argument("--token", help="one access or refresh token")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``serve`` is the default command)."""
    parser = argparse.ArgumentParser(
        prog="python -m instamojo_sandbox",
        description="A local emulator of Instamojo's developer-platform API, OAuth included. "
                    "Without a command, 'serve' is assumed (python -m instamojo_sandbox serve --help).",
    )
    sub = parser.add_subparsers(dest="command")
    _serve_parser(sub)
    _client_parsers(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """A SandboxConfig from parsed ``serve`` arguments."""
    apps = []
    for values in args.app:
        if len(values) < 3:
            raise SystemExit("--app needs CLIENT_ID CLIENT_SECRET REDIRECT_URI [REDIRECT_URI ...]")
        apps.append(App(client_id=values[0], client_secret=values[1], redirect_uris=tuple(values[2:]),
                        name=values[0]))
    include_demo = not args.no_demo_app
    if args.redirect_uri and include_demo:
        apps.append(App(client_id=DEMO_APP.client_id, client_secret=DEMO_APP.client_secret,
                        redirect_uris=DEMO_APP.redirect_uris + tuple(args.redirect_uri), name=DEMO_APP.name))
    return SandboxConfig(
        seed=args.seed, profile=args.profile, merchants=args.merchants, days=args.days,
        payments_per_day=args.payments_per_day, payments=args.payments,
        now=parse_instant(args.now) if args.now else None,
        host=args.host, port=args.port, public_url=args.public_url, page_size=args.page_size,
        max_limit=args.max_limit, honour_limit=not args.ignore_limit, build_workers=args.build_workers,
        sort_order=args.sort_order, latency=args.latency, rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst, app_rate_limit=args.app_rate_limit,
        app_rate_limit_burst=args.app_rate_limit_burst, request_log_size=args.request_log_size,
        idle_timeout=args.idle_timeout, request_timeout=args.request_timeout,
        max_connections=args.max_connections, rotate_refresh_tokens=args.rotate_refresh_tokens,
        access_token_ttl=args.access_token_ttl, refresh_token_ttl=args.refresh_token_ttl,
        code_ttl=args.code_ttl, apps=tuple(apps), include_demo_app=include_demo,
        faults=tuple(json.loads(f) for f in args.fault),
        anomalies=tuple(json.loads(a) for a in args.anomaly),
    )


def serve(args: argparse.Namespace) -> int:
    """Start a sandbox and serve until SIGINT/SIGTERM."""
    from .server import Sandbox

    sandbox = Sandbox(config_from_args(args))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sandbox.start()
    print(sandbox.base_url, flush=True)
    app = sandbox.demo_app
    if app is not None:
        print(f"demo app: client_id={app.client_id} client_secret={app.client_secret}")
        print(f"demo app redirect URIs: {' '.join(app.redirect_uris)}")
    for extra in sandbox.config.apps:
        if app is None or extra.client_id != app.client_id:
            print(f"app: client_id={extra.client_id} redirect URIs: {' '.join(extra.redirect_uris)}")
    merchants = sandbox.merchant_list()
    for m in merchants[:MERCHANT_LINES]:
        c = m["counts"]
        print(f"merchant: {m['username']} ({m['full_name']}): {c['payments']} payments, {c['payouts']} payouts, "
              f"{c['orders']} orders, {c['products']} products")
    if len(merchants) > MERCHANT_LINES:
        rest = merchants[MERCHANT_LINES:]
        total = {k: sum(m["counts"][k] for m in rest) for k in ("payments", "payouts", "orders", "products")}
        print(f"merchants: {len(rest)} more ({rest[0]['username']} … {rest[-1]['username']}): "
              f"{total['payments']} payments, {total['payouts']} payouts, {total['orders']} orders, "
              f"{total['products']} products (GET /_sandbox/merchants lists them)")
    print(f"clock: {sandbox.settings()['now']}; data generated in {sandbox.generation_seconds:.2f} s; "
          f"admin API: {sandbox.base_url}/_sandbox/ ; Ctrl-C stops", flush=True)
    stop.wait()
    sandbox.stop()
    return 0


def _admin(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        raise SystemExit(f"{method} {path}: HTTP {err.code}: {detail}") from None
    except urllib.error.URLError as err:
        raise SystemExit(f"no sandbox at {url}: {err.reason}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m instamojo_sandbox`` and the ``instamojo-sandbox`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "advance":
        if args.to:
            body = {"to": args.to}
        else:
            body = {"days": args.days, "hours": args.hours, "minutes": args.minutes, "seconds": args.seconds}
        print(json.dumps(_admin(args.url, "POST", "/_sandbox/clock/advance", body)))
        return 0
    if args.command == "stats":
        if args.reset:
            print(json.dumps(_admin(args.url, "POST", "/_sandbox/stats/reset", {}), indent=2))
        else:
            print(json.dumps(_admin(args.url, "GET", "/_sandbox/stats"), indent=2))
        return 0
    if args.command == "revoke":
        body = {k: v for k, v in (("merchant", args.merchant), ("client_id", args.client_id),
                                  ("token", args.token)) if v}
        if not body:
            raise SystemExit("say what to revoke: --merchant, --client-id or --token")
        print(json.dumps(_admin(args.url, "POST", "/_sandbox/revoke", body)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
