"""The Instamojo API surface, described as data: one table of endpoints (path, scope, envelope
key, filters) served by one generic list handler, one detail handler and the OAuth pages.

Filter semantics (docs/api-behaviour.md): ``created_after``/``created_before`` are strict
(``>``/``<`` on created_at), ``start_time``/``end_time`` inclusive on paid_out_at, equality
filters exact; an empty filter value is ignored; a value that does not parse is a 400 with a
Django-REST-style body ``{"<param>": ["<message>"]}``.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from math import ceil
from operator import attrgetter
from typing import Protocol
from urllib.parse import parse_qsl, urlencode

import orjson

from .oauth import AuthorizationRequest, AuthorizePageError, OAuthError
from .store import Pred
from .timeutil import parse_instant, to_us

JSON = "application/json"
_JSON_OF = attrgetter("json")


class Response:
    """An HTTP response as the handler builds it; ``fault`` tells the server to misbehave.

    The body is a sequence of byte strings (``parts``) that the server hands to the kernel in one
    gathered write, so a page of records is never copied into one buffer; ``body`` joins them.
    """

    __slots__ = ("at", "client_id", "delay", "endpoint", "fault", "headers", "merchant", "parts", "status")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                 content_type: str | None = JSON):
        self.status = status
        self.parts: tuple[bytes, ...] = (body,)
        self.headers = headers if headers is not None else []
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))
        self.fault: str | None = None
        self.delay = 0.0
        self.endpoint = "unknown"
        self.merchant: str | None = None
        #: the OAuth client the request authenticated as (for the per-app limit and the log)
        self.client_id: str | None = None
        #: the monotonic instant the rate limits judged the request (None: they did not)
        self.at: float | None = None

    @property
    def body(self) -> bytes:
        """The whole body."""
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def json_response(status: int, obj, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response."""
    return Response(status, orjson.dumps(obj), headers)


class HeaderLookup(Protocol):
    """Request headers: anything with a case-insensitive ``.get(name)`` (httpd's Headers, a dict)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass
class Request:
    """What the handlers need from an HTTP request."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: HeaderLookup  # anything with a case-insensitive .get()
    body: bytes
    client_ip: str

    def form(self) -> dict[str, str]:
        """The body as form fields (or a JSON object), last value wins."""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == JSON:
            try:
                data = orjson.loads(self.body or b"{}")
            except orjson.JSONDecodeError:
                return {}
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def params(self) -> dict[str, str]:
        """Query parameters, last value wins."""
        return dict(self.query)


# Filters --------------------------------------------------------------------------------------
def _parse_datetime(value: str) -> int:
    try:
        return to_us(parse_instant(value))
    except ValueError:
        raise ValueError("Enter a valid date/time.") from None


_PRODUCT_STATUS = {"20": 20, "30": 30, "33": 33, "live": 20, "archived": 30, "pending moderation": 33}


def _parse_product_status(value: str) -> int:
    code = _PRODUCT_STATUS.get(value.strip().lower())
    if code is None:
        raise ValueError(f"Select a valid choice. {value} is not one of the available choices (20, 30, 33).")
    return code


def _parse_pending(value: str) -> bool:
    """pending=True/1 → orders without a successful payment, i.e. tag (has success) False."""
    v = value.strip().lower()
    if v in ("true", "1"):
        return False
    if v in ("false", "0"):
        return True
    raise ValueError("Select a valid choice: True, False, 1 or 0.")


def _parse_limit(value: str, max_limit: int) -> int:
    """The page size a ``limit`` asks for: a whole number ≥ 1, capped at ``max_limit``.

    Capped silently, as Django REST framework caps ``page_size_query_param`` at
    ``max_page_size``: a client asking for more gets full pages of ``max_limit`` and can see it
    from what each page holds (docs/api-behaviour.md).
    """
    try:
        n = int(value.strip())
    except ValueError:
        raise ValueError("A valid integer is required.") from None
    if n < 1:
        raise ValueError("Ensure this value is greater than or equal to 1.")
    return min(n, max_limit)


@dataclass(frozen=True)
class Filter:
    """A query parameter and how it becomes a :class:`Pred`."""

    param: str
    kind: str  # id | index | merchant | key_gt | key_lt | key_ge | key_le | tag
    parse: Callable[[str], object] = str

    def pred(self, value: str, merchant_ids: tuple[str, str]) -> Pred:
        if self.kind == "merchant":
            return Pred("all") if value in merchant_ids else Pred("none")
        parsed = self.parse(value)
        if self.kind == "index":
            return Pred("index", self.param, parsed)
        return Pred(self.kind, self.param, parsed)


@dataclass(frozen=True)
class Endpoint:
    """One resource endpoint of the API."""

    name: str
    path: str
    scope: str
    envelope: str | None = None  # None: the body is one object, not a list envelope
    collection: str | None = None
    filters: tuple[Filter, ...] = ()
    num_pages: bool = False
    sortable: bool = True  # follows the configured sort order (covers are by position)
    filter_map: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        self.filter_map.update({f.param: f for f in self.filters})


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("user_info", "/v2/user-info/", "user-info:read"),
    Endpoint("user_contact", "/v2/user-contact/", "user-contact:read"),
    Endpoint(
        "payments", "/v2/payments/", "payments:read", "payments", "payments",
        filters=(
            Filter("id", "id"),
            Filter("buyer", "index"),  # buyer's username or account id
            Filter("seller", "merchant"),  # seller's username or account id
            Filter("payout", "index"),  # payout id
            Filter("product", "index"),  # product slug
            Filter("order_id", "index"),
        ),
    ),
    Endpoint(
        "payouts", "/v2/payouts/", "payouts:read", "payouts", "payouts",
        filters=(
            Filter("id", "id"),
            Filter("start_time", "key_ge", _parse_datetime),
            Filter("end_time", "key_le", _parse_datetime),
        ),
    ),
    Endpoint(
        "products", "/v2/products/", "products:read", "products", "products",
        filters=(
            Filter("created_after", "key_gt", _parse_datetime),
            Filter("created_before", "key_lt", _parse_datetime),
            Filter("status", "tag", _parse_product_status),
        ),
    ),
    Endpoint("product_covers", "/v2/products/{slug}/covers/", "products:read", "covers", sortable=False),
    Endpoint(
        "orders", "/v2/orders/", "orders:read", "orders", "orders",
        filters=(
            Filter("created_after", "key_gt", _parse_datetime),
            Filter("created_before", "key_lt", _parse_datetime),
            Filter("pending", "tag", _parse_pending),
        ),
        num_pages=True,
    ),
)
BY_NAME = {ep.name: ep for ep in ENDPOINTS}
EXACT_ROUTES = {ep.path: ep for ep in ENDPOINTS if "{" not in ep.path}
COVERS_ROUTE = re.compile(r"^/v2/products/([^/]+)/covers/$")
DETAIL_ROUTE = re.compile(r"^/v2/(payments|payouts|products|orders)/([^/]+)/$")
DETAIL_SCOPES = {"payments": "payments:read", "payouts": "payouts:read", "products": "products:read",
                 "orders": "orders:read"}


def endpoint_names() -> list[str]:
    """Names used by stats and fault rules (resource endpoints, details, OAuth)."""
    return [ep.name for ep in ENDPOINTS] + [f"{n}_detail" for n in DETAIL_SCOPES] + [
        "oauth_authorize", "oauth_token"]


def canonical(path: str) -> str:
    """The path with exactly one trailing slash (both forms are served)."""
    return path if path.endswith("/") else path + "/"


class Api:
    """Serves the resource endpoints and OAuth for one sandbox."""

    def __init__(self, sandbox):
        self.sb = sandbox
        self.store = sandbox.store
        self.oauth = sandbox.oauth
        self.base_url = sandbox.store.base_url

    # Resource endpoints -------------------------------------------------------------------
    def resource(self, req: Request, path: str) -> Response | None:
        """Handle a ``/v2/...`` request; None if no endpoint has this path."""
        ep = EXACT_ROUTES.get(path)
        args: tuple = ()
        name = None
        if ep is not None:
            name = ep.name
        else:
            match = COVERS_ROUTE.match(path)
            if match:
                ep, args, name = BY_NAME["product_covers"], (match.group(1),), "product_covers"
            else:
                match = DETAIL_ROUTE.match(path)
                if not match:
                    return None
                args, name = (match.group(1), match.group(2)), f"{match.group(1)}_detail"
        scope = ep.scope if ep is not None else DETAIL_SCOPES[args[0]]
        try:
            access = self.oauth.authenticate(req.headers.get("Authorization"))
        except OAuthError as err:
            resp = json_response(err.status, err.body(),
                                 [("WWW-Authenticate", f'Bearer realm="instamojo", error="{err.error}"')])
            resp.endpoint = name
            return resp
        resp = self._resource_checked(req, path, ep, name, args, access, scope)
        resp.endpoint, resp.merchant, resp.client_id = name, access.merchant, access.client_id
        return resp

    def _resource_checked(self, req, path, ep, name, args, access, scope) -> Response:
        if scope not in access.scopes:
            return json_response(403, {
                "error": "insufficient_scope",
                "error_description": f"This endpoint needs the {scope} scope.",
                "required_scope": scope,
            }, [("WWW-Authenticate", f'Bearer realm="instamojo", error="insufficient_scope", scope="{scope}"')])
        at, limited, retry = self.sb.rate_limits.admit(access.token, access.client_id)
        if limited is not None:
            resp = json_response(429, {"detail": f"Request was throttled. Expected available in {retry} seconds."},
                                 [("Retry-After", str(retry)), ("X-Sandbox-Rate-Limit", limited)])
            resp.at = at
            return resp
        resp = self._serve(req, path, ep, name, args, access)
        resp.at = at
        return resp

    def _serve(self, req, path, ep, name, args, access) -> Response:
        rule = self.sb.faults.match(name, path, access.merchant)
        delay = 0.0
        if rule is not None:
            if rule.kind == "expire_token":
                self.oauth.expire(access.token)
                resp = json_response(401, {"error": "invalid_token", "error_description": "The access token has expired."},
                                     [("WWW-Authenticate", 'Bearer realm="instamojo", error="invalid_token"')])
                resp.fault = "expire_token"
                return resp
            if rule.kind == "error":
                headers = []
                if rule.status in (429, 503):
                    headers.append(("Retry-After", _retry_after(rule.retry_after)))
                body = {"detail": "Request was throttled." if rule.status == 429 else "Service temporarily unavailable."}
                resp = json_response(rule.status, body, headers)
                resp.fault = "error"
                return resp
            if rule.kind == "api_error":
                resp = json_response(200, rule.api_error_body())
                resp.fault = "api_error"
                return resp
            if rule.kind == "slow":
                delay = float(rule.delay)
        state = self.store.state(access.merchant)
        if ep is None:
            resp = self._detail(state, args[0], args[1])
        elif ep.envelope is None:
            resp = Response(200, state.user_info if ep.name == "user_info" else state.user_contact)
        else:
            resp = self._list(req, state, ep, args)
        if rule is not None:
            resp.fault = rule.kind
            resp.delay = delay
        return resp

    def _detail(self, state, collection: str, rid: str) -> Response:
        with self.store.lock:
            rec = state.colls[collection].by_id.get(rid)
            body = None if rec is None else rec.json
        if body is None:
            return json_response(404, {"detail": "Not found."})
        return Response(200, body)

    def _list(self, req: Request, state, ep: Endpoint, args: tuple) -> Response:
        store = self.store
        config = self.sb.config
        params = req.params()
        page = 1
        raw_page = params.get("page")
        if raw_page is not None and raw_page != "":
            try:
                page = int(raw_page)
            except ValueError:
                page = 0
            if page < 1:
                return json_response(404, {"detail": "Invalid page."})
        preds = []
        errors = {}
        merchant_ids = (state.ctx.username, state.ctx.account_id)
        for param, value in params.items():
            flt = ep.filter_map.get(param)
            if flt is None or value == "":
                continue  # unknown parameters and empty values are ignored, as django-filter does
            try:
                pred = flt.pred(value, merchant_ids)
            except ValueError as err:
                errors[param] = [str(err)]
                continue
            if pred.kind != "all":
                preds.append(pred)
        size = config.page_size
        if config.honour_limit:
            limit = params.get("limit")
            if limit is not None and limit != "":
                try:
                    size = _parse_limit(limit, config.max_limit)
                except ValueError as err:
                    errors["limit"] = [str(err)]
        if errors:
            return json_response(400, errors)
        if ep.name == "product_covers":
            slug = args[0]
            path = f"/v2/products/{slug}/covers/"
        else:
            path = ep.path
        with store.lock:
            if ep.name == "product_covers":
                coll = state.covers.get(slug) if slug in state.colls["products"].by_id else None
                if coll is None:
                    return json_response(404, {"detail": "Not found."})
            else:
                coll = state.colls[ep.collection]
            order = config.sort_order if ep.sortable else "oldest_first"
            seq = coll.served(tuple(sorted(preds, key=lambda p: (p.kind, p.name))), order)
            count = len(seq)
            pages = max(1, ceil(count / size))
            if page > pages:
                return json_response(404, {"detail": "Invalid page."})
            start = (page - 1) * size
            chunk = b",".join(map(_JSON_OF, seq[start:start + size]))
        others = [(k, v) for k, v in req.query if k != "page"]
        carried = urlencode(others) if others else ""
        nxt = self._page_url(path, carried, page + 1) if page < pages else None
        prev = self._page_url(path, carried, page - 1) if page > 1 else None
        head = b'{"count":%d,' % count
        if ep.num_pages:
            head += b'"num_pages":%d,' % pages
        envelope = ep.envelope
        if envelope is None:
            raise ValueError(f"endpoint {ep.name} serves one object, not a list envelope")
        head = b"".join((head, b'"next":', orjson.dumps(nxt), b',"previous":', orjson.dumps(prev),
                         b',"success":true,"', envelope.encode(), b'":['))
        resp = Response(200)
        resp.parts = (head, chunk, b"]}")
        return resp

    def _page_url(self, path: str, carried: str, page: int) -> str:
        """An absolute page URL carrying every other query parameter of the request (``carried``,
        already encoded); like Django REST framework, page 1 is the URL without ``page``."""
        if page > 1:
            query = f"{carried}&page={page}" if carried else f"page={page}"
        else:
            query = carried
        return f"{self.base_url}{path}?{query}" if query else f"{self.base_url}{path}"

    # OAuth --------------------------------------------------------------------------------
    def authorize(self, req: Request) -> Response:
        """``GET`` renders the consent page; ``POST`` is the page's form."""
        try:
            if req.method == "GET":
                result = self.oauth.start_authorization(req.params())
                if isinstance(result, str):
                    return redirect(result)
                return Response(200, consent_page(result, self.sb.merchant_choices()).encode(),
                                content_type="text/html; charset=utf-8")
            if req.method == "POST":
                form = req.form()
                return redirect(self.oauth.decide(form.get("request_id"), form.get("merchant"), form.get("decision")))
            return json_response(405, {"detail": f'Method "{req.method}" not allowed.'}, [("Allow", "GET, POST")])
        except AuthorizePageError as err:
            return Response(400, error_page(str(err)).encode(), content_type="text/html; charset=utf-8")

    def token(self, req: Request) -> Response:
        """``POST /oauth2/token/``."""
        if req.method != "POST":
            return json_response(405, {"detail": f'Method "{req.method}" not allowed.'}, [("Allow", "POST")])
        basic = None
        header = req.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
                user, _, password = decoded.partition(":")
                from urllib.parse import unquote

                basic = (unquote(user), unquote(password))
            except (binascii.Error, UnicodeDecodeError):
                return json_response(401, {"error": "invalid_client", "error_description": "Malformed Basic credentials."},
                                     [("WWW-Authenticate", 'Basic realm="instamojo"')])
        no_store = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        try:
            body = self.oauth.token(req.form(), basic)
        except OAuthError as err:
            headers = list(no_store)
            if err.status == 401 and basic is not None:
                headers.append(("WWW-Authenticate", 'Basic realm="instamojo"'))
            return json_response(err.status, err.body(), headers)
        resp = json_response(200, body, no_store)
        access = self.oauth.lookup(body["access_token"])
        if access is not None:
            resp.merchant, resp.client_id = access.merchant, access.client_id
        return resp


def _retry_after(value) -> str:
    seconds = 1 if value is None else value
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def redirect(location: str) -> Response:
    """A 302 to ``location``."""
    return Response(302, b"", [("Location", location)], content_type=None)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}}
.box{{border:1px solid #ddd;border-radius:8px;padding:1.5rem}} button{{padding:.5rem 1.2rem;margin-right:.5rem}}
.muted{{color:#666;font-size:.9rem}} code{{background:#f4f4f4;padding:0 .2rem}}</style></head>
<body><div class="box">{body}</div>
<p class="muted">Instamojo sandbox: a local emulator, not instamojo.com.</p></body></html>
"""


def consent_page(request: AuthorizationRequest, merchants: list[tuple[str, str]]) -> str:
    """The approve/deny page. Form fields: ``request_id`` (hidden), ``merchant`` (a select of
    usernames), ``decision`` (``approve`` or ``deny``, the two submit buttons)."""
    e = html.escape
    options = "\n".join(f'<option value="{e(u)}">{e(label)}</option>' for u, label in merchants)
    scopes = "".join(f"<li><code>{e(s)}</code></li>" for s in request.scopes)
    body = f"""<h1>Authorize {e(request.app.name)}</h1>
<p><strong>{e(request.app.name)}</strong> (<code>{e(request.app.client_id)}</code>) asks to:</p>
<ul>{scopes}</ul>
<form method="post" action="/oauth2/authorize/">
<input type="hidden" name="request_id" value="{e(request.request_id)}">
<p><label for="merchant">Sign in as merchant</label><br>
<select id="merchant" name="merchant">
{options}
</select></p>
<p><button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
<p class="muted">You will be sent back to <code>{e(request.redirect_uri)}</code>.</p>"""
    return _PAGE.format(title="Authorize application", body=body)


def error_page(message: str) -> str:
    """The page for an authorization request that cannot redirect anywhere."""
    return _PAGE.format(title="Authorization error",
                        body=f"<h1>Authorization error</h1><p>{html.escape(message)}</p>")
