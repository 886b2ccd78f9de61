"""The admin HTTP API under ``/_sandbox/``: clock, faults, anomalies, ground truth, statistics,
revocation, apps, tokens and run-time configuration. Unauthenticated, answered to loopback
clients only. Bodies are JSON; errors are ``{"error": "..."}`` with 400 or 404.

===========================================  ====================================================
``GET    /_sandbox/``                        index: base URL, clock, this table
``GET    /_sandbox/clock``                   ``{"now": iso}``
``POST   /_sandbox/clock/advance``           ``{"days", "hours", "minutes", "seconds"}`` or ``{"to": iso}``
``GET    /_sandbox/merchants``               usernames, account ids, visible record counts
``GET    /_sandbox/truth/<merchant>/<ep>``   the records of ``ep`` as served now (``relations``: hidden links)
``GET    /_sandbox/anomalies``               injected anomalies
``POST   /_sandbox/anomalies``               ``{"kind", "merchant", ...params}`` → its truth record
``GET    /_sandbox/faults``                  fault rules (with seen/fired counts)
``POST   /_sandbox/faults``                  ``{"kind", "endpoint", "status", "count", ...}`` → the rule
``DELETE /_sandbox/faults[/<id>]``           remove one or every rule
``GET    /_sandbox/stats``                   request counts per merchant, endpoint, status
``DELETE /_sandbox/stats``                   reset them (also ``POST /_sandbox/stats/reset``)
``POST   /_sandbox/revoke``                  ``{"merchant"|"client_id"|"token"}`` → ``{"revoked": n}``
``GET    /_sandbox/apps``                    registered OAuth apps
``POST   /_sandbox/apps``                    ``{"client_id", "client_secret", "redirect_uris", "scopes"?}``
``POST   /_sandbox/tokens``                  ``{"merchant", "client_id"?, "scopes"?}`` → tokens without the consent page;
                                             ``{"merchants": [...]}`` or ``{"all": true}`` → a list, one per merchant
``GET    /_sandbox/requests``                the request log: ``?since=<seq>&limit=<n>`` (default 10,000)
``DELETE /_sandbox/requests``                forget the logged requests
``GET    /_sandbox/config``                  run-time settings
``PATCH  /_sandbox/config``                  change any of server.RUNTIME_SETTINGS (``page_size``,
                                             ``honour_limit``, ``max_limit``, ``sort_order``, ``rate_limit``,
                                             ``app_rate_limit``, ``latency``, ...)
===========================================  ====================================================
"""

from __future__ import annotations

import ipaddress

import orjson

from .anomalies import AnomalyError
from .api import Request, Response, json_response
from .config import App
from .timeutil import iso, parse_instant, to_us

ROUTES = (
    ("GET", "/_sandbox/"), ("GET", "/_sandbox/clock"), ("POST", "/_sandbox/clock/advance"),
    ("GET", "/_sandbox/merchants"), ("GET", "/_sandbox/truth/<merchant>/<endpoint>"),
    ("GET", "/_sandbox/anomalies"), ("POST", "/_sandbox/anomalies"),
    ("GET", "/_sandbox/faults"), ("POST", "/_sandbox/faults"), ("DELETE", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults/<id>"), ("GET", "/_sandbox/stats"), ("DELETE", "/_sandbox/stats"),
    ("POST", "/_sandbox/stats/reset"), ("POST", "/_sandbox/revoke"), ("GET", "/_sandbox/apps"),
    ("POST", "/_sandbox/apps"), ("POST", "/_sandbox/tokens"), ("GET", "/_sandbox/requests"),
    ("DELETE", "/_sandbox/requests"), ("GET", "/_sandbox/config"), ("PATCH", "/_sandbox/config"),
)
#: the most request-log entries one GET /_sandbox/requests returns
REQUESTS_PAGE_MAX = 100_000


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class Admin:
    """Routes ``/_sandbox/...`` requests to the sandbox's Python API."""

    def __init__(self, sandbox):
        self.sb = sandbox

    def handle(self, req: Request) -> Response:
        """Answer one admin request."""
        if not _is_loopback(req.client_ip):
            return json_response(403, {"error": "the admin API answers loopback clients only"})
        try:
            return json_response(200, self._route(req))
        except AdminError as err:
            return json_response(err.status, {"error": str(err)})
        except (KeyError, ValueError, TypeError, AnomalyError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            return json_response(400, {"error": str(message)})

    def _body(self, req: Request) -> dict:
        if not req.body:
            return {}
        try:
            data = orjson.loads(req.body)
        except orjson.JSONDecodeError as err:
            raise AdminError(400, f"the body is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise AdminError(400, "the body must be a JSON object")
        return data

    def _route(self, req: Request):
        sb = self.sb
        method = req.method
        parts = [p for p in req.path.split("/") if p][1:]  # drop "_sandbox"
        head = parts[0] if parts else ""
        if head == "" and method == "GET":
            return {"base_url": sb.base_url, "now": iso(sb.store.now),
                    "routes": [f"{m} {p}" for m, p in ROUTES]}
        if head == "clock":
            if len(parts) == 1 and method == "GET":
                return {"now": iso(sb.store.now)}
            if parts[1:] == ["advance"] and method == "POST":
                body = self._body(req)
                if "to" in body:
                    sb.store.advance_to(to_us(parse_instant(str(body["to"]))))
                else:
                    unknown = set(body) - {"days", "hours", "minutes", "seconds"}
                    if unknown:
                        raise AdminError(400, f"unknown fields {sorted(unknown)}: use days/hours/minutes/seconds or to")
                    sb.store.advance(**{k: float(v) for k, v in body.items()})
                return {"now": iso(sb.store.now)}
        if head == "merchants" and method == "GET":
            return sb.merchant_list()
        if head == "truth" and method == "GET" and len(parts) == 3:
            merchant, endpoint = parts[1], parts[2]
            if endpoint == "relations":
                return sb.relations(merchant)
            return sb.truth(merchant, endpoint)
        if head == "anomalies" and len(parts) == 1:
            if method == "GET":
                return sb.anomalies.list()
            if method == "POST":
                body = self._body(req)
                kind = body.pop("kind", None)
                if not kind:
                    raise AdminError(400, "say which anomaly: {\"kind\": ...}")
                return sb.anomalies.inject(kind, **body)
        if head == "faults":
            if len(parts) == 1:
                if method == "GET":
                    return sb.faults.list()
                if method == "POST":
                    body = self._body(req)
                    kind = body.pop("kind", None)
                    if not kind:
                        raise AdminError(400, "say which fault: {\"kind\": ...}")
                    return sb.faults.add(kind, **body).as_dict()
                if method == "DELETE":
                    sb.faults.clear()
                    return {"removed": "all"}
            if len(parts) == 2 and method == "DELETE":
                if not sb.faults.remove(int(parts[1])):
                    raise AdminError(404, f"no fault rule {parts[1]}")
                return {"removed": int(parts[1])}
        if head == "stats":
            if len(parts) == 1 and method == "GET":
                return sb.stats()
            if (len(parts) == 1 and method == "DELETE") or (parts[1:] == ["reset"] and method == "POST"):
                sb.reset_stats()
                return sb.stats()
        if head == "revoke" and method == "POST":
            body = self._body(req)
            return {"revoked": sb.revoke(merchant=body.get("merchant"), client_id=body.get("client_id"),
                                         token=body.get("token"))}
        if head == "apps":
            if method == "GET":
                return sb.app_list()
            if method == "POST":
                body = self._body(req)
                uris = body.get("redirect_uris") or ([body["redirect_uri"]] if "redirect_uri" in body else [])
                kwargs = {"client_id": body.get("client_id", ""), "client_secret": body.get("client_secret", ""),
                          "redirect_uris": tuple(uris)}
                if body.get("scopes"):
                    scopes = body["scopes"]
                    kwargs["scopes"] = tuple(scopes.split() if isinstance(scopes, str) else scopes)
                if body.get("name"):
                    kwargs["name"] = body["name"]
                app = sb.register_app(App(**kwargs))
                return {"client_id": app.client_id, "redirect_uris": list(app.redirect_uris), "scopes": list(app.scopes)}
        if head == "tokens" and method == "POST":
            body = self._body(req)
            scopes = body.get("scopes")
            if isinstance(scopes, str):
                scopes = scopes.split()
            client_id = body.get("client_id")
            if body.get("all") is True:
                return sb.issue_tokens_bulk(None, scopes=scopes, client_id=client_id)
            if "merchants" in body:
                merchants = body["merchants"]
                if not isinstance(merchants, list) or not all(isinstance(m, str) for m in merchants):
                    raise AdminError(400, "merchants must be a list of usernames (or account ids)")
                return sb.issue_tokens_bulk(merchants, scopes=scopes, client_id=client_id)
            if not body.get("merchant"):
                raise AdminError(400, "say for which merchant: {\"merchant\": ...}, {\"merchants\": [...]} "
                                      "or {\"all\": true}")
            return sb.issue_tokens(body["merchant"], scopes=scopes, client_id=client_id)
        if head == "requests" and len(parts) == 1:
            if method == "GET":
                params = req.params()
                try:
                    since = int(params.get("since") or 0)
                    limit = int(params.get("limit") or 10_000)
                except ValueError:
                    raise AdminError(400, "since and limit are whole numbers") from None
                if limit < 1 or limit > REQUESTS_PAGE_MAX:
                    raise AdminError(400, f"limit is between 1 and {REQUESTS_PAGE_MAX}")
                return sb.requests.page(since, limit)
            if method == "DELETE":
                sb.clear_request_log()
                return {"cleared": True}
        if head == "config":
            if method == "GET":
                return sb.settings()
            if method in ("PATCH", "POST"):
                return sb.configure(**self._body(req))
        raise AdminError(404, f"no admin route {method} {req.path}; GET /_sandbox/ lists them")
