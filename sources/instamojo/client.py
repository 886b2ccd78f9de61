"""HTTP for one merchant: GETs through dlt's retrying client, fast JSON, and list pagination that
can fetch pages in parallel and stop early when the listing proves to be sorted newest-first.

Retries (429 honouring Retry-After, 5xx, dropped connections, timeouts, with exponential
backoff) are dlt's own `dlt.sources.helpers.requests.Client`, configured by the usual
`[runtime] request_*` settings, shared by every merchant of a run (`limits.HttpClients`). What is
written here is what dlt's RESTClient does not do: parallel page fetching when the count is
known, a page that is cut off (a 200 whose JSON does not parse) retried like a 5xx, `success:
false` inside a 2xx treated as the error it is (as Instamojo's PHP SDK does), one refresh and
resend on a 401, orjson parsing, and per-endpoint request counts for the run summary.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson
import requests

from .auth import MerchantAuth
from .errors import ApiError, AuthError, ScopeError
from .limits import HttpClients

# Called with each page's records (in page order); True stops the listing after that page.
StopRule = Callable[[list[dict[str, Any]]], bool]

# A page whose JSON does not parse (cut off by a proxy or a dropped connection) is fetched again
# this many times, backing off like dlt's retries, before the listing fails.
MALFORMED_PAGE_RETRIES = 3
MALFORMED_PAGE_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its raw body (for Arrow's parser), its URL, how many records
    it holds, and the records parsed into dicts, unless the listing did not need them (bulk pages
    fetched in parallel are handed to Arrow unparsed: parsing them twice would cost as much as
    fetching them)."""

    body: bytes
    url: str
    count: int
    records: list[dict[str, Any]] | None = None


class MalformedPage(ApiError):
    """A 2xx answer whose body is not the JSON object expected."""


class ApiClient:
    """GETs against one merchant's API with auth, retries, counting and pagination."""

    def __init__(
        self,
        *,
        merchant: str,
        base_url: str,
        auth: MerchantAuth,
        http: HttpClients,
        page_concurrency: int = 4,
        page_size: int | None = None,
        prefetch_pages: int = 256,
    ) -> None:
        self.merchant = merchant
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        self.http = http
        self.page_concurrency = max(1, page_concurrency)
        # asked for with the `limit` parameter; what pages really hold is read off each listing
        self.page_size = page_size
        # pages fetched ahead of the caller (~100 kB each): fetching goes on during a batch's conversion
        self.prefetch_pages = max(1, prefetch_pages)
        self._count_lock = threading.Lock()
        self.requests_by_endpoint: Counter[str] = Counter()
        self.page_sizes_seen: set[int] = set()  # first pages' sizes of listings that had more pages

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def get_json(self, url: str, *, endpoint: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET `url` and parse its JSON object; errors name the merchant and endpoint."""
        return self._get(url, endpoint=endpoint, params=params)[0]

    def _get(
        self, url: str, *, endpoint: str, params: dict[str, Any] | None = None, parse: bool = True
    ) -> tuple[dict[str, Any] | None, bytes, str, float]:
        """GET with dlt's retries; a page that does not parse is fetched again
        (`MALFORMED_PAGE_RETRIES`) before the listing fails. Returns (document or None when
        `parse` is False, body, final URL, the server's response time)."""
        for attempt in range(MALFORMED_PAGE_RETRIES + 1):
            resp = self._send(url, endpoint=endpoint, params=params)
            # elapsed: until the response's headers, i.e. the server's response time (used to size
            # how many requests to keep in flight)
            waited = resp.elapsed.total_seconds()
            if not parse:
                return None, resp.content, resp.url, waited
            try:
                return self._parse(resp.content, resp.url, endpoint), resp.content, resp.url, waited
            except MalformedPage:
                if attempt == MALFORMED_PAGE_RETRIES:
                    raise
                time.sleep(MALFORMED_PAGE_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    def _send(self, url: str, *, endpoint: str, params: dict[str, Any] | None) -> requests.Response:
        """One GET through the shared retrying session; a 401 refreshes the access token once
        (unless another thread already did) and sends again, through the same retries."""
        with self._count_lock:
            self.requests_by_endpoint[endpoint] += 1
        session = self.http.api.session
        for resend in (False, True):
            try:
                return session.get(url, params=params, auth=self.auth, headers={"Accept": "application/json"})
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 401 and not resend:
                    used = (exc.response.request.headers.get("Authorization") or "").removeprefix("Bearer ")
                    self.auth.refresh(stale_token=used)
                    with self._count_lock:
                        self.requests_by_endpoint[endpoint] += 1
                    continue
                raise self._status_error(exc.response, endpoint) from None
            except AuthError:
                raise
            except requests.RequestException as exc:
                raise ApiError(
                    f"request to {_without_query(url)} failed after retries: {exc.__class__.__name__}: {exc}",
                    merchant=self.merchant,
                    endpoint=endpoint,
                ) from None
        raise AssertionError("unreachable")

    def refetch(self, endpoint: str) -> Callable[[str], bytes]:
        """A function that fetches a page of `endpoint` again by its URL until its JSON parses
        (for pages that were handed to Arrow unparsed and turned out cut off)."""

        def fetch(url: str) -> bytes:
            return self._get(url, endpoint=endpoint)[1]

        return fetch

    def _status_error(self, resp: requests.Response | None, endpoint: str) -> Exception:
        status = resp.status_code if resp is not None else None
        body: dict[str, Any] = {}
        if resp is not None:
            try:
                parsed = orjson.loads(resp.content)
                body = parsed if isinstance(parsed, dict) else {}
            except orjson.JSONDecodeError:
                pass
        where = _describe(resp.url) if resp is not None else endpoint
        if status == 403:
            scope = str(body.get("required_scope") or "")
            return ScopeError(
                f"HTTP 403 from {where}: the merchant did not grant scope {scope or '(unknown)'}",
                scope=scope,
                merchant=self.merchant,
                endpoint=endpoint,
            )
        if status == 401:
            return AuthError(
                f"HTTP 401 from {where} even with a freshly refreshed access token: the merchant's "
                "authorization was revoked; re-authorize with `make authorize MERCHANT=<name>`",
                merchant=self.merchant,
                endpoint=endpoint,
            )
        detail = body.get("error") or body.get("detail") or body.get("message") or ""
        return ApiError(f"HTTP {status} from {where}{': ' + str(detail) if detail else ''}",
                        merchant=self.merchant, endpoint=endpoint)

    # -- pagination ------------------------------------------------------------------------------

    def iter_pages(
        self,
        path: str,
        *,
        endpoint: str,
        envelope_key: str,
        params: dict[str, Any] | None = None,
        stop: StopRule | None = None,
        parse_all: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """Yield each page of a list endpoint, in page order.

        The first page is fetched alone (a listing with nothing new costs one request). After it,
        when the envelope's `count` is known and `next` is a page-number link, the remaining pages
        are fetched `page_concurrency` at a time, their URLs made by copying `next` and changing
        only `page`; otherwise, and for any tail that appeared while listing, `next` links are
        followed exactly as given. `stop` may end the listing after any page. `parse_all`: every
        page comes with its records as dicts (otherwise bulk pages may come as bytes only).
        """
        limit = min(page_size, self.page_size) if page_size and self.page_size else self.page_size
        if limit:
            params = {**(params or {}), "limit": limit}
        first, body, url, _ = self._get(self.url(path), endpoint=endpoint, params=params)
        assert first is not None
        records = self._records(first, envelope_key, endpoint)
        yield Page(body, url, len(records), records)
        if stop is not None and stop(records):
            return
        next_url = first.get("next")
        if not next_url:
            return
        page_size = len(records)
        self.page_sizes_seen.add(page_size)
        page_urls = self._remaining_page_urls(next_url, first.get("count"), page_size)
        if page_urls and self.page_concurrency > 1:
            # Pages only a stop rule or the caller reads as records are parsed here; the others
            # go to Arrow as bytes. A listing that may stop early starts one page at a time and
            # widens as it goes on, so stopping wastes few requests.
            parse = stop is not None or parse_all
            window = 1 if stop is not None else self.page_concurrency
            last: tuple[dict[str, Any] | None, bytes, str] | None = None
            for doc, body, url in self._fetch_in_order(page_urls, endpoint, window, parse):
                if doc is not None:
                    records = self._records(doc, envelope_key, endpoint)
                    yield Page(body, url, len(records), records)
                    if stop is not None and stop(records):
                        return
                else:
                    yield Page(body, url, page_size)
                last = (doc, body, url)
            next_url = None
            if last is not None:
                doc = last[0] if last[0] is not None else self._parse(last[1], last[2], endpoint)
                next_url = doc.get("next")  # a tail that appeared while listing
        while next_url:
            doc, body, url, _ = self._get(next_url, endpoint=endpoint)
            records = self._records(doc, envelope_key, endpoint)
            yield Page(body, url, len(records), records)
            if stop is not None and stop(records):
                return
            next_url = doc.get("next")

    def _parse(self, body: bytes, url: str, endpoint: str) -> dict[str, Any]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedPage(f"malformed JSON from {_describe(url)} ({exc}), also after "
                                f"{MALFORMED_PAGE_RETRIES} more attempts; nothing from this listing was "
                                "committed and its cursor is unchanged, so the next run retries it",
                                merchant=self.merchant, endpoint=endpoint) from None
        if not isinstance(doc, dict):
            raise MalformedPage(f"expected a JSON object from {_describe(url)}", merchant=self.merchant,
                                endpoint=endpoint)
        check_success(doc, url, merchant=self.merchant, endpoint=endpoint)
        return doc

    def _fetch_in_order(
        self, urls: list[str], endpoint: str, window: int, parse: bool
    ) -> Iterator[tuple[dict[str, Any] | None, bytes, str]]:
        """Fetch `urls` in parallel, yielding the pages in order.

        Two limits, kept apart on purpose:
        - requests in flight follow Little's law: enough to keep this client busy while each
          request waits on the network, i.e. the server's response time over the CPU a page
          costs here (both measured as it goes), plus one, at most `page_concurrency`. Over a
          slow network that is many; against a fast local server one or two, as more threads
          would only fight over the GIL;
        - pages fetched ahead of the caller: up to `prefetch_pages`, so fetching goes on while
          the caller converts a batch. A listing that may stop early (`window` given small)
          fetches ahead no further than its window, which doubles page by page.
        A dispatcher thread submits requests as those limits allow.
        """
        limit = self.page_concurrency
        pool = ThreadPoolExecutor(limit, thread_name_prefix=f"instamojo-{self.merchant}")
        cond = threading.Condition()
        queue: deque[Future[tuple[dict[str, Any] | None, bytes, str, float, float]]] = deque()
        # held: the page the caller is working on; it counts as fetched ahead until the caller asks for the next
        state = {"inflight": 0, "window": min(window, limit), "needed": 1, "closing": False, "dispatched": False,
                 "held": 0}
        ahead_max = self.prefetch_pages if window >= limit else None  # None: follow the window

        def timed_get(url: str) -> tuple[dict[str, Any] | None, bytes, str, float, float]:
            cpu = time.thread_time()
            doc, body, final_url, waited = self._get(url, endpoint=endpoint, parse=parse)
            return doc, body, final_url, waited, time.thread_time() - cpu

        def done(_: Future) -> None:
            with cond:
                state["inflight"] -= 1
                cond.notify_all()

        def may_submit() -> bool:
            in_flight_ok = state["inflight"] < max(1, min(state["needed"], limit))
            ahead = len(queue) + state["held"]
            ahead_ok = ahead < (ahead_max if ahead_max is not None else state["window"])
            return in_flight_ok and ahead_ok

        def dispatch() -> None:
            try:
                for url in urls:
                    with cond:
                        while not state["closing"] and not may_submit():
                            cond.wait()
                        if state["closing"]:
                            return
                        future = pool.submit(timed_get, url)
                        state["inflight"] += 1
                        queue.append(future)
                        cond.notify_all()
                    future.add_done_callback(done)
            finally:
                with cond:
                    state["dispatched"] = True
                    cond.notify_all()

        dispatcher = threading.Thread(target=dispatch, name=f"instamojo-{self.merchant}-dispatch", daemon=True)
        dispatcher.start()
        waiting_s: float | None = None  # server response time (requests' `elapsed`: until headers)
        cpu_s: float | None = None  # this client's CPU per page
        try:
            while True:
                with cond:
                    while not queue and not state["dispatched"]:
                        cond.wait()
                    if not queue:
                        return
                    future = queue.popleft()
                    state["held"] = 1
                doc, body, url, waited, cpu = future.result()
                page = (doc, body, url)
                waiting_s = waited if waiting_s is None else 0.8 * waiting_s + 0.2 * waited
                cpu_s = cpu if cpu_s is None else 0.8 * cpu_s + 0.2 * cpu
                with cond:
                    state["needed"] = math.ceil(waiting_s / max(cpu_s, 0.0002)) + 1
                    cond.notify_all()
                yield page
                # the caller asked for more, so it did not stop here: the window may widen
                with cond:
                    state["held"] = 0
                    state["window"] = min(state["window"] * 2, 1 << 20)
                    cond.notify_all()
        finally:
            # stopping early (or an error): stop dispatching, drop what has not started
            with cond:
                state["closing"] = True
                cond.notify_all()
            dispatcher.join()
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _remaining_page_urls(next_url: str, count: Any, page_size: int) -> list[str]:
        if not isinstance(count, int) or page_size <= 0:
            return []
        parts = urlsplit(next_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        pages = [v for k, v in query if k == "page"]
        if len(pages) != 1 or pages[0] != "2":
            return []
        total_pages = math.ceil(count / page_size)

        def with_page(n: int) -> str:
            q = [(k, str(n) if k == "page" else v) for k, v in query]
            return urlunsplit(parts._replace(query=urlencode(q)))

        return [next_url] + [with_page(n) for n in range(3, total_pages + 1)]

    def _records(self, doc: dict[str, Any], key: str, endpoint: str) -> list[dict[str, Any]]:
        records = doc.get(key)
        if not isinstance(records, list):
            raise ApiError(
                f"page has no {key!r} list (keys: {sorted(doc)[:8]}); nothing from this listing was "
                "committed and its cursor is unchanged",
                merchant=self.merchant,
                endpoint=endpoint,
            )
        return records


def check_success(doc: dict[str, Any], url: str | None, *, merchant: str, endpoint: str) -> None:
    """Instamojo's envelopes carry `success`; `success: false` inside a 2xx answer is an error
    (its text in `message`, else `reason`), as Instamojo's PHP SDK treats it."""
    if doc.get("success") is False:
        text = doc.get("message") or doc.get("reason") or "no message"
        raise ApiError(f"{_describe(url)} answered success=false: {str(text)[:300]}; nothing from this "
                       "listing was committed and its cursor is unchanged, so the next run retries it",
                       merchant=merchant, endpoint=endpoint)


def _without_query(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=""))


def _describe(url: str | None) -> str:
    """The URL's path and its page number (filters may hold ids; tokens are never in URLs)."""
    if not url:
        return "(unknown URL)"
    parts = urlsplit(url)
    page = dict(parse_qsl(parts.query)).get("page")
    return parts.path + (f" page {page}" if page else "")
