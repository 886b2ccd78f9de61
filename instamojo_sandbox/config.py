"""Every knob of the sandbox, in one dataclass (:class:`SandboxConfig`), plus the size profiles
and the documented demo OAuth app.

Where the published reference is silent (page size, sort order, token rotation, lifetimes,
rate limits), the default here is the choice recorded in ``docs/api-behaviour.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

#: The six scopes an app can ask for (the reference's list; "5 scopes" in its prose is a typo).
ALL_SCOPES: tuple[str, ...] = (
    "user-info:read",
    "user-contact:read",
    "payments:read",
    "payouts:read",
    "products:read",
    "orders:read",
)

SORT_ORDERS = ("newest_first", "oldest_first", "unordered")

#: The default "now" of the sandbox clock: Monday 18 November 2024, 00:00 in Asia/Kolkata.
#: Fixed (not the wall clock) so that the same seed serves the same data on any day; the
#: default histories then cross weekends, Diwali (Thu 31 Oct 2024), Gandhi Jayanti (Wed 2 Oct)
#: and Guru Nanak's Birthday (Fri 15 Nov), which is what the settlement rules need to show.
DEFAULT_NOW = dt.datetime(2024, 11, 17, 18, 30, tzinfo=dt.UTC)


@dataclass(frozen=True)
class App:
    """A registered OAuth client: its credentials, the exact redirect URIs it may use, and the
    scopes it may be granted."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...] = ALL_SCOPES
    name: str = "Sandbox app"

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("an app needs a non-empty client_id and client_secret")
        if not self.redirect_uris:
            raise ValueError(f"app {self.client_id!r} needs at least one redirect URI")
        unknown = set(self.scopes) - set(ALL_SCOPES)
        if unknown:
            raise ValueError(f"app {self.client_id!r}: unknown scopes {sorted(unknown)}; known: {list(ALL_SCOPES)}")
        # Accept lists from callers; keep tuples so the dataclass stays hashable.
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        object.__setattr__(self, "scopes", tuple(self.scopes))


#: The documented demo app: sandbox-only credentials, fine to print and commit.
DEMO_APP = App(
    client_id="sandbox-demo-client",
    client_secret="sandbox-demo-secret",
    redirect_uris=(
        "http://127.0.0.1:8976/oauth2/callback",
        "http://localhost:8976/oauth2/callback",
    ),
    name="instamojo-elt demo",
)


@dataclass(frozen=True)
class Rates:
    """How the generated data is shaped: shares and probabilities, all deterministic per seed."""

    #: share of new payments that belong to an order (the rest are link/POS/SDK payments)
    order_share: float = 0.35
    #: a payment attempt fails (status false)
    failure_rate: float = 0.07
    #: a payment attempt never leaves "pending" (status null forever: an abandoned checkout)
    abandoned_rate: float = 0.015
    #: share of payments by international cards or Amex (3% + ₹3)
    international_share: float = 0.06
    #: a settled payment is held for review in the payout that settles it
    hold_rate: float = 0.03
    #: share of held payments that are later refunded to the buyer (the rest are released)
    held_refund_share: float = 0.35
    #: a paid-out payment is refunded later (its full amount is deducted from a later payout)
    refund_after_payout_rate: float = 0.01
    #: an order's first attempt fails and the buyer pays again within minutes
    order_retry_rate: float = 0.08
    #: an order stays unpaid for hours or days before it is paid (a pending order becoming paid)
    order_late_payment_rate: float = 0.08
    #: an order is paid in two parts, the second part never arriving ("Partially Paid")
    order_partial_rate: float = 0.03
    #: a settled payment carries an affiliate commission (10% of its amount)
    affiliate_rate: float = 0.02
    #: a settled payment carries a partner commission (1% of its amount)
    partner_rate: float = 0.02
    #: new products per merchant per day (on top of the initial catalogue)
    new_products_per_day: float = 0.15


@dataclass(frozen=True)
class Profile:
    """A dataset size: merchants, days of history, payments per merchant per day, catalogue."""

    merchants: int
    days: int
    payments_per_day: float
    catalogue: int
    #: the data shape of this size, unless SandboxConfig.rates is given
    rates: Rates = field(default_factory=Rates)


PROFILES: dict[str, Profile] = {
    # fast tests: a few hundred payments per merchant, several pages at page size 10-25
    "small": Profile(merchants=2, days=21, payments_per_day=12, catalogue=8),
    # make demo: a few thousand payments per merchant, syncs in seconds
    "demo": Profile(merchants=3, days=60, payments_per_day=60, catalogue=24),
    # benchmarks: one merchant; pair with `payments=` for an exact count
    # benchmarks: one merchant; pair with `payments=` for an exact count. Fewer orders (10% of
    # payments instead of 35%) keep the generation of a million payments quick.
    "bench": Profile(merchants=1, days=60, payments_per_day=2000, catalogue=40, rates=Rates(order_share=0.10)),
}


@dataclass
class SandboxConfig:
    """Everything the sandbox can be told. Defaults are the documented behaviour.

    Data: ``seed``, ``profile`` and the overrides ``merchants``, ``days``,
    ``payments_per_day`` and ``payments`` (an exact number of payments for the *first*
    merchant over the history, for benchmarks) decide the dataset; ``now`` is the initial
    clock (default :data:`DEFAULT_NOW`). With ``now`` at midnight Asia/Kolkata (the default)
    ``payments=N`` yields exactly N visible payments.

    Serving: ``host``/``port`` (0 = a free port), ``public_url`` (the base URL written into
    responses; default ``http://host:port``), ``sort_order``; ``page_size`` (records per page
    when the request has no ``limit``; 50, as Instamojo's SDKs document), ``honour_limit``
    (False: the ``limit`` query parameter is ignored, as by an API that does not know it) and
    ``max_limit`` (the most records a ``limit`` gets per page; 500).

    Building: ``build_workers`` (processes that generate the dataset; None = one per CPU, at
    most 4, for a large dataset of several merchants on a machine of at least 4 CPUs with 2
    idle, else 1; the data are the same).

    OAuth: ``apps`` (registered besides the demo app unless ``include_demo_app`` is False),
    lifetimes in seconds (``access_token_ttl``, ``refresh_token_ttl``, ``code_ttl``) on the
    real clock, and ``rotate_refresh_tokens``.

    Faults: ``rate_limit`` (requests per second per access token, None = no limit; a token
    bucket of ``rate_limit_burst``); ``app_rate_limit`` (requests per second for all tokens of
    one OAuth app together: at most ``app_rate_limit_burst`` requests, default the rate rounded
    up, in any window of burst/rate seconds); ``latency`` seconds added to every API request;
    ``faults`` and ``anomalies`` (dicts, as accepted by ``FaultSet.add`` /
    ``Anomalies.inject``) applied at start; ``fault_seed`` for the rate-based faults.

    Requests: ``request_log_size`` (the newest API requests kept in the request log; 0 = none);
    ``idle_timeout`` (seconds a keep-alive connection may idle between requests),
    ``request_timeout`` (seconds a started request may take to arrive whole, else 408) and
    ``max_connections`` (open connections at once; 503 beyond).
    """

    seed: int = 1
    profile: str = "small"
    merchants: int | None = None
    days: int | None = None
    payments_per_day: float | None = None
    payments: int | None = None
    now: dt.datetime | None = None
    rates: Rates | None = None
    build_workers: int | None = None

    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    page_size: int = 50
    honour_limit: bool = True
    max_limit: int = 500
    sort_order: str = "newest_first"

    apps: tuple[App, ...] = ()
    include_demo_app: bool = True
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float = 90 * 86400.0
    code_ttl: float = 60.0
    rotate_refresh_tokens: bool = False

    rate_limit: float | None = None
    rate_limit_burst: int | None = None
    app_rate_limit: float | None = None
    app_rate_limit_burst: int | None = None
    latency: float = 0.0
    faults: tuple[dict, ...] = ()
    anomalies: tuple[dict, ...] = ()
    fault_seed: int | None = None

    request_log_size: int = 200_000
    idle_timeout: float = 60.0
    request_timeout: float = 10.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
        if self.sort_order not in SORT_ORDERS:
            raise ValueError(f"unknown sort_order {self.sort_order!r}; choose one of {list(SORT_ORDERS)}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {self.page_size}")
        if self.max_limit < 1:
            raise ValueError(f"max_limit must be at least 1, got {self.max_limit}")
        if self.payments is not None and self.payments < 0:
            raise ValueError(f"payments must be ≥ 0, got {self.payments}")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (requests per second) or None")
        if self.app_rate_limit is not None and self.app_rate_limit <= 0:
            raise ValueError("app_rate_limit must be positive (requests per second) or None")
        for name in ("rate_limit_burst", "app_rate_limit_burst"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 or None")
        if self.request_log_size < 0:
            raise ValueError("request_log_size must be ≥ 0")
        if self.idle_timeout <= 0 or self.request_timeout <= 0:
            raise ValueError("idle_timeout and request_timeout must be positive (seconds)")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.build_workers is not None and self.build_workers < 1:
            raise ValueError("build_workers must be at least 1 or None")
        self.apps = tuple(self.apps)
        self.faults = tuple(self.faults)
        self.anomalies = tuple(self.anomalies)

    # Resolved values (profile + overrides) -------------------------------------------------
    @property
    def n_merchants(self) -> int:
        """How many merchants the dataset has."""
        if self.merchants is not None:
            return self.merchants
        return PROFILES[self.profile].merchants if self.payments is None else 1

    @property
    def n_days(self) -> int:
        """Days of history before the initial clock."""
        return self.days if self.days is not None else PROFILES[self.profile].days

    @property
    def daily_payments(self) -> float:
        """Mean payments per merchant per day (the first merchant's rate follows ``payments``)."""
        if self.payments_per_day is not None:
            return self.payments_per_day
        return PROFILES[self.profile].payments_per_day

    @property
    def data_rates(self) -> Rates:
        """The data shape: ``rates`` if given, else the profile's."""
        return self.rates if self.rates is not None else PROFILES[self.profile].rates

    @property
    def catalogue(self) -> int:
        """Products each merchant has before the history starts."""
        return PROFILES[self.profile].catalogue

    @property
    def initial_now(self) -> dt.datetime:
        """The clock at start."""
        return (self.now or DEFAULT_NOW).astimezone(dt.UTC)

    @property
    def all_apps(self) -> tuple[App, ...]:
        """Registered apps: the demo app (unless excluded) and ``apps``."""
        return ((DEMO_APP,) if self.include_demo_app else ()) + self.apps

    def replace(self, **changes) -> SandboxConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
