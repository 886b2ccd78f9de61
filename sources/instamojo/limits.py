"""Request rate limits shared by every merchant of a run, and the HTTP clients that obey them.

Instamojo publishes no rate limit, so both limits are settings: requests per second per merchant
token, and for the whole app (every merchant together). Every HTTP attempt, retries included,
passes through `LimitedAdapter.send`, which waits for its turn.

A 429 answer means a limit nobody told us about. It closes a gate for its `Retry-After`: nobody
sends until then (Instamojo does not say whether a limit is per token or per app, so the whole app
waits), and the app's pace is set to a little under what it was sending in the second before the
429, so the merchants waiting do not all retry at once and run into the limit again. The learned
pace is relaxed step by step while no 429 comes (an additive increase after a multiplicative
decrease, as TCP does), so a limit that was lifted stops costing time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from dlt.sources.helpers.requests import Client
from requests.adapters import HTTPAdapter

# After a 429 the app's pace becomes this share of what it sent in the second before it ...
BACKOFF_SHARE = 0.8
# ... and grows by this much (requests per second) each quiet interval without a 429.
RECOVERY_STEP = 1.0
RECOVERY_INTERVAL_SECONDS = 2.0
MERCHANT_ATTRIBUTE = "instamojo_merchant"  # set on each PreparedRequest by MerchantAuth
ATTEMPTS_ATTRIBUTE = "instamojo_attempts"  # how many times a PreparedRequest was sent (retries)


class _Spacing:
    """Hands out send times at least `interval` apart (a leaky bucket without burst)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next = 0.0

    def reserve(self, now: float, interval: float | None = None) -> float:
        start = max(now, self.next)
        self.next = start + (self.interval if interval is None else interval)
        return start


class RequestLimits:
    """`wait(merchant)` blocks until a request of `merchant` may go out; `throttled(seconds)`
    records a 429. Thread-safe; shared by every merchant of a run."""

    def __init__(self, per_merchant: float | None = None, per_app: float | None = None) -> None:
        for name, value in (("per_merchant", per_merchant), ("per_app", per_app)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of requests per second, got {value!r}")
        self.per_merchant = per_merchant
        self.per_app = per_app
        self._lock = threading.Lock()
        self._merchants: dict[str, _Spacing] = {}
        self._app = _Spacing(1.0 / per_app if per_app else 0.0)
        self._gate_until = 0.0
        self._sent: deque[float] = deque()  # when requests went out, the last second's worth
        self._learned: float | None = None  # requests per second after a 429 (None: no 429 yet)
        self._relaxed_at = 0.0
        self.throttle_events = 0  # 429s seen
        self.gate_seconds = 0.0  # time the gate was closed, in all

    @property
    def app_pace(self) -> float | None:
        """The requests per second the app keeps to now (None: as fast as it goes)."""
        limits = [r for r in (self.per_app, self._learned) if r]
        return min(limits) if limits else None

    def wait(self, merchant: str | None) -> None:
        if self.per_merchant and merchant is not None:
            with self._lock:
                spacing = self._merchants.setdefault(merchant, _Spacing(1.0 / self.per_merchant))
                start = spacing.reserve(time.monotonic())
            _sleep_until(start)
        with self._lock:
            now = time.monotonic()
            self._relax(now)
            if now < self._gate_until:
                self._app.next = max(self._app.next, self._gate_until)
            pace = self.app_pace
            start = self._app.reserve(now, 1.0 / pace if pace else 0.0) if pace or now < self._gate_until else now
            self._sent.append(start)
            while self._sent and self._sent[0] < start - 1.0:
                self._sent.popleft()
        _sleep_until(start)

    def throttled(self, retry_after: float) -> None:
        with self._lock:
            now = time.monotonic()
            self.throttle_events += 1
            until = now + max(0.0, retry_after)
            if until > self._gate_until:
                self.gate_seconds += until - max(self._gate_until, now)
                self._gate_until = until
            recent = sum(1 for t in self._sent if now - 1.0 <= t <= now)
            pace = max(1.0, recent * BACKOFF_SHARE)
            if self._learned is None or pace < self._learned:
                self._learned = pace
            self._relaxed_at = until

    def _relax(self, now: float) -> None:
        """Additive increase: a step faster for every quiet interval since the last 429."""
        if self._learned is None or now - self._relaxed_at < RECOVERY_INTERVAL_SECONDS:
            return
        steps = int((now - self._relaxed_at) // RECOVERY_INTERVAL_SECONDS)
        self._learned += steps * RECOVERY_STEP
        self._relaxed_at += steps * RECOVERY_INTERVAL_SECONDS


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def retry_after_seconds(response: requests.Response, default: float = 1.0) -> float:
    """The `Retry-After` of a response in seconds (delta-seconds or an HTTP date)."""
    header = response.headers.get("Retry-After")
    if not header:
        return default
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return default


class LimitedAdapter(HTTPAdapter):
    """An HTTPAdapter whose every send waits for `RequestLimits` and reports 429s to it."""

    def __init__(self, limits: RequestLimits, **kwargs: Any) -> None:
        self.limits = limits
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.limits.wait(getattr(request, MERCHANT_ATTRIBUTE, None))
        setattr(request, ATTEMPTS_ATTRIBUTE, getattr(request, ATTEMPTS_ATTRIBUTE, 0) + 1)
        response = super().send(request, *args, **kwargs)
        if response.status_code == 429:
            self.limits.throttled(retry_after_seconds(response))
        return response


class LimitedClient(Client):
    """dlt's retrying client (429 with Retry-After, 5xx, dropped connections, timeouts: its
    `[runtime] request_*` settings), with every attempt sent through a `LimitedAdapter`."""

    def __init__(self, limits: RequestLimits, *, max_connections: int = 64, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._limited = LimitedAdapter(limits, pool_connections=4, pool_maxsize=max_connections)

    def _make_session(self) -> Any:
        session = super()._make_session()
        session.mount("http://", self._limited)
        session.mount("https://", self._limited)
        return session


class HttpClients:
    """The HTTP clients of a run, shared by every merchant (one connection pool per host):
    `api` raises for error statuses after its retries, `token` leaves OAuth answers to the caller."""

    def __init__(self, limits: RequestLimits | None = None, *, max_connections: int = 64) -> None:
        self.limits = limits or RequestLimits()
        self.api = LimitedClient(self.limits, max_connections=max_connections)
        self.api.configure()  # [runtime] request_timeout / request_max_attempts / request_backoff_factor …
        self.token = LimitedClient(self.limits, max_connections=max_connections, raise_for_status=False)
        self.token.configure()
