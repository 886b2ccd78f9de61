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

Every faulted response carries ``X-Sandbox-Fault: <kind>`` so tests can tell a fault from a bug.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

FAULT_KINDS = ("error", "slow", "drop", "malformed", "expire_token")


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

    def __init__(self, rate: float, burst: int | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> int | None:
        """None if the request may proceed, else the Retry-After in whole seconds (≥ 1)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))


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
