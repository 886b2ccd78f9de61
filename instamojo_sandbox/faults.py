"""Faults injected into HTTP responses, per request rule, switchable at run time; the per-token
rate limit; request statistics.

A rule matches requests by endpoint name (a glob: ``payments``, ``product_*``, ``oauth_token``,
``*``), optionally by path glob and merchant, and fires on the matching requests after the
first ``skip``, ``count`` times (None = every time), each time with probability ``rate``
(None = always; decided by a seeded random stream so a run is reproducible).

Kinds:

- ``error``: answer ``status`` (429, 500, 502, 503, ...) with a JSON body; 429 and 503 carry
  ``Retry-After`` (``retry_after`` seconds, default 1). ``count=3`` makes a burst of three.
- ``slow``: wait ``delay`` seconds, then answer normally.
- ``drop``: send the headers and half the body, then close the connection.
- ``malformed``: answer 200 with a JSON body cut in half.
- ``expire_token``: the request's access token expires now; the request gets 401.
- ``api_error``: answer 200 with ``{"success": false, "message": <message>}`` (or ``"reason"``
  when only ``reason`` is given), an error inside a 2xx response, which Instamojo's PHP SDK
  (https://github.com/Instamojo/instamojo-php-api) treats as a failure.

Every faulted response carries ``X-Sandbox-Fault: <kind>`` so tests can tell a fault from a bug.

Rate limits (:class:`RateLimits`): a token bucket per access token (``rate_limit``) and a
sliding window per OAuth app (``app_rate_limit``: at most ``burst`` requests in any
``burst / rate`` seconds, so with the default burst at most ``rate`` requests in any second).
The request log (:class:`RequestLog`) keeps every API request's time, merchant, app, endpoint
and status, bounded.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field

FAULT_KINDS = ("error", "slow", "drop", "malformed", "expire_token", "api_error")

#: the text of an ``api_error`` fault that says neither ``message`` nor ``reason``
DEFAULT_API_ERROR = "Something went wrong while processing the request. Please try again."


@dataclass
class FaultRule:
    """One fault rule; see the module docstring."""

    kind: str
    endpoint: str = "*"
    path: str | None = None
    merchant: str | None = None
    status: int = 503
    retry_after: float | None = None
    delay: float = 1.0
    count: int | None = 1
    rate: float | None = None
    skip: int = 0
    message: str | None = None
    reason: str | None = None
    id: int = 0
    seen: int = field(default=0)
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose one of {list(FAULT_KINDS)}")
        if self.kind == "error" and not (400 <= int(self.status) <= 599):
            raise ValueError(f"an error fault needs an HTTP error status, got {self.status}")
        if self.rate is not None and not (0 <= self.rate <= 1):
            raise ValueError(f"rate is a probability between 0 and 1, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be ≥ 0 or None, got {self.count}")
        self.status = int(self.status)

    def api_error_body(self) -> dict:
        """The body of an ``api_error`` fault: ``success`` false and the text (``message``, or
        ``reason`` when only that is given)."""
        body: dict = {"success": False}
        if self.message is not None or self.reason is None:
            body["message"] = self.message if self.message is not None else DEFAULT_API_ERROR
        if self.reason is not None:
            body["reason"] = self.reason
        return body

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``count`` times."""
        return self.count is not None and self.fired >= self.count

    def as_dict(self) -> dict:
        """The rule as JSON-able data."""
        return asdict(self)


class FaultSet:
    """The active fault rules. Thread-safe; rules are checked in the order they were added."""

    def __init__(self, seed: int | None = None):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._rng = random.Random(seed if seed is not None else 0)

    def add(self, kind: str, **params) -> FaultRule:
        """Add a rule (see :class:`FaultRule` for the parameters); returns it (with its id)."""
        params.pop("id", None)
        params.pop("seen", None)
        params.pop("fired", None)
        rule = FaultRule(kind=kind, **params)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Remove a rule by id; True if it existed."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = []

    def list(self) -> list[dict]:
        """The rules, with how many requests each has seen and fired on."""
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def match(self, endpoint: str, path: str, merchant: str | None) -> FaultRule | None:
        """The rule that fires on this request, if any (and count it as fired)."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.exhausted:
                    continue
                if not fnmatch.fnmatchcase(endpoint, rule.endpoint):
                    continue
                if rule.path is not None and not fnmatch.fnmatchcase(path, rule.path):
                    continue
                if rule.merchant is not None and rule.merchant != merchant:
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None


class RateLimiter:
    """A token bucket per access token: ``rate`` requests per second, bursts of ``burst``."""

    #: buckets kept before idle (full) ones are forgotten
    PRUNE_AT = 20_000

    def __init__(self, rate: float, burst: int | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> int | None:
        """Take one request from ``key``'s bucket at ``now``: None if it may proceed, else the
        Retry-After in whole seconds (≥ 1). Not thread-safe: :class:`RateLimits` locks."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            if len(self._buckets) >= self.PRUNE_AT and key not in self._buckets:
                self._prune(now)
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.rate))

    def give_back(self, key: str) -> None:
        """Return the request just taken (another limit refused it)."""
        tokens, last = self._buckets[key]
        self._buckets[key] = (min(self.burst, tokens + 1), last)

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class WindowLimiter:
    """At most ``burst`` requests in any window of ``burst / rate`` seconds, per key (a sliding
    window log): with the default burst (``rate`` rounded up) at most ``rate`` requests in any
    second, which is what a test reading the request log can check exactly."""

    def __init__(self, rate: float, burst: int | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = int(burst if burst is not None else max(1, math.ceil(rate)))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self.window = self.burst / self.rate
        self._logs: dict[str, deque] = {}

    def take(self, key: str, now: float) -> int | None:
        """Admit one request for ``key`` at ``now`` (None) or refuse it with the Retry-After in
        whole seconds (≥ 1). Not thread-safe: :class:`RateLimits` locks."""
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        window = self.window
        while log and now - log[0] >= window:
            log.popleft()
        if len(log) < self.burst:
            log.append(now)
            return None
        return max(1, math.ceil(log[0] + window - now))


class RateLimits:
    """The per-token and the per-app limit, decided together under one lock.

    :meth:`admit` reads the monotonic clock inside the lock, so the instants it hands out are
    in the order the limits saw them; the request log records that instant, and a window count
    over the log is exactly what the limits enforced.
    """

    def __init__(self, token_rate: float | None = None, token_burst: int | None = None,
                 app_rate: float | None = None, app_burst: int | None = None):
        self._lock = threading.Lock()
        self.per_token = RateLimiter(float(token_rate), token_burst) if token_rate else None
        self.per_app = WindowLimiter(float(app_rate), app_burst) if app_rate else None

    @property
    def active(self) -> bool:
        return self.per_token is not None or self.per_app is not None

    def admit(self, token: str, client_id: str) -> tuple[float, str | None, int | None]:
        """(instant, which limit refused or None, Retry-After seconds or None)."""
        if not self.active:
            return time.monotonic(), None, None
        with self._lock:
            now = time.monotonic()
            per_token, per_app = self.per_token, self.per_app
            if per_token is not None:
                retry = per_token.take(token, now)
                if retry is not None:
                    return now, "token", retry
            if per_app is not None:
                retry = per_app.take(client_id, now)
                if retry is not None:
                    if per_token is not None:
                        per_token.give_back(token)
                    return now, "app", retry
            return now, None, None


class RequestLog:
    """Every API request (resource and OAuth endpoints, not the admin API): a sequence number,
    its instant on the monotonic clock (``t``, seconds) and the wall clock (``wall``, Unix
    seconds), merchant, OAuth client, endpoint, method, status and fault. Bounded: a deque of
    at most ``maxlen`` entries, the oldest dropped first; ``since`` pages by sequence number."""

    FIELDS = ("seq", "t", "wall", "merchant", "client_id", "endpoint", "method", "status", "fault")

    def __init__(self, maxlen: int):
        if maxlen < 0:
            raise ValueError("the request log size must be ≥ 0")
        self._lock = threading.Lock()
        self._entries: deque = deque(maxlen=maxlen)
        self._seq = 0

    @property
    def maxlen(self) -> int:
        return self._entries.maxlen or 0

    def record(self, t: float, merchant: str | None, client_id: str | None, endpoint: str, method: str,
               status: int, fault: str | None) -> None:
        """Append one request (``t`` from time.monotonic)."""
        wall = time.time()
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, t, wall, merchant, client_id, endpoint, method, status, fault))

    def resize(self, maxlen: int) -> None:
        """Change the bound, keeping the newest entries."""
        if maxlen < 0:
            raise ValueError("the request log size must be ≥ 0")
        with self._lock:
            self._entries = deque(self._entries, maxlen=maxlen)

    def clear(self) -> None:
        """Forget every entry (sequence numbers keep counting, so ``since`` stays valid)."""
        with self._lock:
            self._entries.clear()

    def page(self, since: int = 0, limit: int | None = None) -> dict:
        """Entries with a sequence number above ``since``, oldest first, at most ``limit``:
        ``{"requests": [...], "next": <since for the next page>, "more": bool,
        "dropped": <entries evicted so far>, "total": <requests recorded so far>}``."""
        with self._lock:
            entries = self._entries
            total = self._seq
            first = entries[0][0] if entries else total + 1
            start = max(0, int(since) + 1 - first)
            stop = len(entries) if limit is None else min(len(entries), start + max(0, int(limit)))
            rows = list(itertools.islice(entries, start, stop)) if start < stop else []
            more = stop < len(entries)
            dropped = first - 1
        fields = self.FIELDS
        return {"requests": [dict(zip(fields, row, strict=True)) for row in rows],
                "next": rows[-1][0] if rows else max(int(since), dropped),
                "more": more, "dropped": dropped, "total": total}


class Stats:
    """Request counts per (merchant, endpoint, status). Merchant "-" means unauthenticated."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def record(self, merchant: str | None, endpoint: str, status: int) -> None:
        """Count one request."""
        key = (merchant or "-", endpoint, status)
        with self._lock:
            self._counts[key] += 1

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()

    def count(self, merchant: str | None = None, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests matching every given criterion (None = any)."""
        with self._lock:
            return sum(
                n for (m, e, s), n in self._counts.items()
                if (merchant is None or m == merchant)
                and (endpoint is None or e == endpoint)
                and (status is None or s == status)
            )

    def snapshot(self) -> dict:
        """``{"total": n, "merchants": {merchant: {endpoint: {"requests": n, "statuses":
        {"200": n, ...}}}}}``."""
        with self._lock:
            items = list(self._counts.items())
        merchants: dict = {}
        total = 0
        for (m, e, s), n in sorted(items, key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            total += n
            slot = merchants.setdefault(m, {}).setdefault(e, {"requests": 0, "statuses": {}})
            slot["requests"] += n
            slot["statuses"][str(s)] = slot["statuses"].get(str(s), 0) + n
        return {"total": total, "merchants": merchants}
