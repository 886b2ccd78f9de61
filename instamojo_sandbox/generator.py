"""Deterministic data: each merchant's records, generated one (merchant, day) at a time.

Every day has its own random stream, seeded by (seed, merchant, day), and days are always
generated in calendar order, so the dataset is a pure function of the configuration however the
clock is advanced. Each record is generated with its whole timeline (when a pending payment
resolves and to what, which payout settles it, whether it is held and later released or
refunded, when a pending order is paid), and the payout of a business day is built when that
day is generated, from the payments and events scheduled for it.

The generator hands models to a *sink* (the store): ``sink.add(model, *changes)`` for a new
record and the instants at which its visible state will change, ``sink.touch(model, at)`` for a
change learnt later (a payout that settles a payment, a purchase of a product).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import math
import random
import re
from array import array
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Protocol

from . import catalog
from .config import SandboxConfig
from .models import (
    Buyer,
    MerchantCtx,
    OrderItem,
    OrderModel,
    PaymentModel,
    PayoutModel,
    ProductModel,
)
from .rules import (
    SETTLEMENT_BUSINESS_DAYS,
    ZERO,
    add_business_days,
    fees_for,
    is_business_day,
    money,
)
from .timeutil import US, iso

DAY_US = 86400 * US
HOUR_US = 3600 * US
MINUTE_US = 60 * US
#: Asia/Kolkata is UTC+05:30 all year (no daylight saving), so an IST date is integer arithmetic.
IST_OFFSET_US = 19800 * US
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

# Relative payment volume by weekday (Mon..Sun) and by hour of day (IST).
_WEEKDAY_VOLUME = (1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.75)
_MEAN_WEEKDAY_VOLUME = sum(_WEEKDAY_VOLUME) / 7
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 9, 7, 4, 2)
_HOUR_CUM = []
_total = 0
for _w in _HOUR_WEIGHTS:
    _total += _w
    _HOUR_CUM.append(_total)
_HOUR_TOTAL = _total

_ROUND_AMOUNTS = (99, 149, 199, 249, 299, 499, 500, 799, 999, 1000, 1499, 1999, 2000, 2500, 3000,
                  4999, 5000, 7500, 10000, 15000)
_ROUND_PAISE = tuple(a * 100 for a in _ROUND_AMOUNTS)
_N_ROUND = len(_ROUND_PAISE)
#: random.NV_MAGICCONST (private to the random module), computed as it does
_NV_MAGICCONST = 4 * math.exp(-0.5) / math.sqrt(2.0)


class Sink(Protocol):
    """Where generated models go (the store)."""

    def add(self, model, *changes: int | None) -> None: ...

    def touch(self, model, at: int) -> None: ...


def ist_day_of(us: int) -> dt.date:
    """The Asia/Kolkata calendar date of an instant."""
    return dt.date.fromordinal(_EPOCH_ORDINAL + (us + IST_OFFSET_US) // DAY_US)


def ist_day_start(day: dt.date) -> int:
    """00:00 Asia/Kolkata on ``day``, in microseconds since the epoch."""
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY_US - IST_OFFSET_US


@lru_cache(maxsize=4096)
def settlement_day(created_day: dt.date) -> dt.date:
    """The business day on which a payment made on ``created_day`` (IST) is paid out: T+3."""
    return add_business_days(created_day, SETTLEMENT_BUSINESS_DAYS)


def paise(n: int) -> Decimal:
    """An integer number of paise as a two-place Decimal (``paise(949400)`` → 9494.00)."""
    return Decimal(n).scaleb(-2)


_PAISE: dict[int, Decimal] = {}


def paise_cached(n: int) -> Decimal:
    """:func:`paise`, sharing one Decimal per value (Decimals are immutable; amounts repeat
    across payments and merchants, so this saves both the conversion and the memory)."""
    value = _PAISE.get(n)
    if value is None:
        value = Decimal(n).scaleb(-2)
        if len(_PAISE) < 400_000:
            _PAISE[n] = value
    return value


@lru_cache(maxsize=4096)
def _slugify(text: str) -> str:
    # cached: every merchant's catalogue is drawn from the same few dozen product titles
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cum(weights) -> tuple[list[int], int]:
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out, total


def _uuid4(n: int) -> str:
    """``str(uuid.UUID(int=n, version=4))``, without the UUID object (an order id each)."""
    n = (n & ~(0xC000 << 48) | (0x8000 << 48)) & ~(0xF000 << 64) | (4 << 76)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pick(rand, seq):
    """``seq[k]`` for a uniform k, from a random() function (faster than Random.choice)."""
    return seq[int(rand() * len(seq))]


def _rng(*parts) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random: stable across processes and
    # independent of PYTHONHASHSEED.
    return random.Random(":".join(str(p) for p in parts))


def build_merchants(config: SandboxConfig, base_url: str) -> list[MerchantCtx]:
    """The merchants of a dataset, deterministic from the seed."""
    out = []
    for i in range(config.n_merchants):
        rng = _rng(config.seed, i, "merchant")
        if i < len(catalog.MERCHANTS):
            username, full_name, city, website = catalog.MERCHANTS[i]
        else:
            first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
            username, full_name = f"merchant_{i + 1}", f"{first} {last}"
            city, website = rng.choice(catalog.CITIES)[0], None
        signup = dt.date(2017, 1, 1) + dt.timedelta(days=rng.randrange(6 * 365))
        out.append(
            MerchantCtx(
                index=i,
                username=username,
                account_id=f"{rng.getrandbits(128):032x}",
                full_name=full_name,
                email=f"{username.replace('_', '.')}@example.com",
                phone=f"+9198{rng.randrange(10**8):08d}",
                city=city,
                website=website,
                signup_date=signup.isoformat(),
                invoice_prefix=f"{rng.randrange(10**10):010d}",
                base_url=base_url,
            )
        )
    return out


class BuyerPool:
    """A merchant's buyers; low indexes are picked more often (repeat customers)."""

    def __init__(self, seed: int, merchant: int, size: int):
        self.seed, self.merchant, self.size = seed, merchant, max(1, size)
        self._cache: dict[int, Buyer] = {}

    def pick(self, rng: random.Random) -> Buyer:
        """A buyer, skewed towards regulars."""
        k = int(self.size * rng.random() ** 1.6)
        buyer = self._cache.get(k)
        if buyer is None:
            buyer = self._cache[k] = self._make(k)
        return buyer

    def _make(self, k: int) -> Buyer:
        # One BLAKE2 digest per buyer instead of a seeded Random: a large merchant has tens of
        # thousands of buyers and seeding a Mersenne Twister for each is slow.
        digest = hashlib.blake2b(f"{self.seed}:{self.merchant}:buyer:{k}".encode(), digest_size=32).digest()
        n = int.from_bytes(digest[:16], "big")
        account = digest[16:].hex()

        # successive remainders of one big number (the digest), in a fixed order
        n, i_first = divmod(n, len(catalog.FIRST_NAMES))
        n, i_last = divmod(n, len(catalog.LAST_NAMES))
        n, i_city = divmod(n, len(catalog.CITIES))
        n, i_registered = divmod(n, 4)
        n, i_domain = divmod(n, len(catalog.EMAIL_DOMAINS))
        n, i_prefix = divmod(n, 4)
        n, i_number = divmod(n, 10**9)
        n, i_house = divmod(n, 220)
        n, i_street = divmod(n, len(catalog.STREETS))
        n, i_zip = divmod(n, 1000)
        first, last = catalog.FIRST_NAMES[i_first], catalog.LAST_NAMES[i_last]
        city, state, pin = catalog.CITIES[i_city]
        registered = i_registered == 0  # a quarter of buyers have an Instamojo account
        return Buyer(
            name=f"{first} {last}",
            email=f"{first}.{last}{k}@{catalog.EMAIL_DOMAINS[i_domain]}".lower(),
            phone=f"+91{'6789'[i_prefix]}{i_number:09d}",
            address=f"{1 + i_house}, {catalog.STREETS[i_street]}, {city}",
            city=city,
            state=state,
            zip_code=f"{pin}{i_zip:03d}",
            username=f"{first}{last[0]}{k}".lower() if registered else None,
            account_id=account if registered else None,
        )


class MerchantGenerator:
    """Generates one merchant's records day by day and builds its payouts."""

    def __init__(self, config: SandboxConfig, m: MerchantCtx, sink: Sink, first_day: dt.date,
                 last_history_day: dt.date, exact_total: int | None):
        self.seed = config.seed
        self.rates = config.data_rates
        self.m = m
        self.mi = m.index
        self.sink = sink
        self.first_day = first_day
        self.next_day = first_day
        self.mean = config.daily_payments
        if exact_total is not None and last_history_day >= first_day:
            days = (last_history_day - first_day).days + 1
            self.mean = exact_total / days
            self.exact = self._allocate(exact_total, first_day, last_history_day)
        else:
            self.exact = {}
        self.preplaced: dict[dt.date, int] = defaultdict(int)
        self.settle: dict[dt.date, list[PaymentModel]] = defaultdict(list)
        self.outcomes: dict[dt.date, list[PaymentModel]] = defaultdict(list)
        self.refunds: dict[dt.date, list[PaymentModel]] = defaultdict(list)
        self.payouts: dict[str, PayoutModel] = {}
        self.products: list[ProductModel] = []
        self._slugs: set[str] = set()
        self._pay_seq = 0
        self._partial_made = False
        self._day_codes: dict[dt.date, str] = {}
        self._day_start = ist_day_start(first_day)
        self._invoice_seq = 0
        self._cover_seq = 0
        setup = _rng(self.seed, self.mi, "setup")
        self._templates = list(range(len(catalog.PRODUCTS)))
        setup.shuffle(self._templates)
        self.links = [
            (f"{m.base_url}/v2/links/l{setup.getrandbits(128):032x}/", title)
            for title in setup.sample(catalog.LINK_TITLES, 6)
        ]
        self._amounts = self._amount_table(_rng(self.seed, self.mi, "amounts"), self._table_size(config))
        self.buyers = BuyerPool(self.seed, self.mi, int(min(20000, max(60, self.mean * 8))))
        self._ptype_cum, self._ptype_total = _cum(w for _, w in catalog.STANDALONE_PAYMENT_TYPES)
        self._otype_cum, self._otype_total = _cum(w for _, w in catalog.ORDER_PAYMENT_TYPES)
        self._instr_cum, self._instr_total = _cum(w for _, w, _ in catalog.DOMESTIC_INSTRUMENTS)
        start = ist_day_start(first_day)
        for _ in range(config.catalogue):
            created = start - setup.randrange(10 * DAY_US, 400 * DAY_US)
            self._new_product(setup, created, catalogue=True)

    def __getstate__(self) -> dict:
        # pickled by the build workers (store.Store._build_in_workers); the sink is the
        # worker's store, which the receiving store replaces with itself
        state = dict(self.__dict__)
        state["sink"] = None
        return state

    # Volumes ------------------------------------------------------------------------------
    def _weight(self, day: dt.date) -> float:
        noise = _rng(self.seed, self.mi, day, "volume").random()
        return _WEEKDAY_VOLUME[day.weekday()] * (0.75 + 0.5 * noise)

    def _allocate(self, total: int, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        """Split exactly ``total`` payments over the history days (largest remainder)."""
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        weights = [self._weight(d) for d in days]
        scale = total / sum(weights)
        quotas = [w * scale for w in weights]
        counts = [int(q) for q in quotas]
        short = total - sum(counts)
        by_fraction = sorted(range(len(days)), key=lambda i: (-(quotas[i] - counts[i]), i))
        for i in by_fraction[:short]:
            counts[i] += 1
        return dict(zip(days, counts, strict=True))

    def _day_count(self, day: dt.date, rng: random.Random) -> int:
        if day in self.exact:
            return self.exact[day]
        x = self.mean * self._weight(day) / _MEAN_WEEKDAY_VOLUME
        n = int(x)
        return n + (1 if rng.random() < x - n else 0)

    @staticmethod
    def _time_in_day(rng: random.Random) -> int:
        hour = bisect.bisect_right(_HOUR_CUM, rng.random() * _HOUR_TOTAL)
        return min(hour, 23) * HOUR_US + 1 + int(rng.random() * (HOUR_US - 1))

    # The day ------------------------------------------------------------------------------
    def generate_day(self, day: dt.date) -> None:
        """Generate everything created on ``day`` (IST) and the payout paid out that day."""
        if day != self.next_day:
            raise RuntimeError(f"days must be generated in order: expected {self.next_day}, got {day}")
        self._build_payout(day)
        start = ist_day_start(day)
        end = start + DAY_US
        self._day_start = start
        rng = _rng(self.seed, self.mi, day)
        new_products = self.rates.new_products_per_day
        n_products = int(new_products) + (1 if rng.random() < new_products - int(new_products) else 0)
        for _ in range(n_products):
            self._new_product(rng, start + self._time_in_day(rng), catalogue=False)
        sellable = [p for p in self.products if p.sellable_during(start, end)]
        budget = max(0, self._day_count(day, rng) - self.preplaced.pop(day, 0))
        made = 0
        order_share = self.rates.order_share
        while made < budget:
            if sellable and rng.random() < order_share:
                made += self._order(rng, day, start, budget - made, sellable)
            else:
                made += self._standalone(rng, day, start, sellable)
        self.next_day = day + dt.timedelta(days=1)

    # Payments -----------------------------------------------------------------------------
    def _amount(self, rng: random.Random) -> Decimal:
        """A payment amount: a pick from the merchant's price table (see _amount_table)."""
        amounts = self._amounts
        return paise_cached(amounts[int(rng.random() * len(amounts))])

    def _table_size(self, config: SandboxConfig) -> int:
        """4,096 prices for the named merchants (their data stay as they always were); the
        generated ones of a large dataset (``merchant_6`` on) get a table sized to their history,
        512 to 4,096: drawing 4,096 prices is a fixed cost of every merchant, the largest one
        when a thousand merchants have a few hundred payments each."""
        if self.mi < len(catalog.MERCHANTS):
            return 4096
        expected = self.mean * config.n_days
        return 1 << max(9, min(12, math.ceil(math.log2(max(1.0, expected)))))

    @staticmethod
    def _amount_table(rng: random.Random, size: int = 4096) -> array:
        """The merchant's price table in paise, drawn once: 55% round prices, the rest log-normal
        (median ≈ ₹735, with paise half the time). Picking from a table is what keeps a million
        payments quick.

        ``rng.lognormvariate(6.6, 1.1)`` is inlined (the same draws in the same order, so the
        same table), and the table holds integers, not Decimals: at a thousand merchants the
        table is a fixed cost of every merchant, in time and in memory (4,096 Decimals are
        400 KiB; this array is 32 KiB).
        """
        rand = rng.random
        log, exp = math.log, math.exp
        table = array("q", bytes(8 * size))
        for i in range(size):
            if rand() < 0.55:
                table[i] = _ROUND_PAISE[int(rand() * _N_ROUND)]
            else:
                while True:  # random.Random.normalvariate (Kinderman and Monahan), inlined
                    u1 = rand()
                    u2 = 1.0 - rand()
                    z = _NV_MAGICCONST * (u1 - 0.5) / u2
                    if z * z / 4.0 <= -log(u2):
                        break
                rupees = int(min(200000, max(10, exp(6.6 + z * 1.1))))
                table[i] = rupees * 100 + (0 if rand() < 0.5 else int(rand() * 100))
        return table

    def _payment(self, rng: random.Random, day: dt.date, created: int, amount: Decimal, title: str,
                 ptype: str, buyer: Buyer, outcome: str | None = None, product=None, link=None,
                 order=None) -> tuple[PaymentModel, int]:
        """One payment attempt. Returns it and 1 if it counts towards ``day``'s volume."""
        # The hot path of a million-payment benchmark: random() scaled by hand is several
        # times faster than randrange()/choice() and just as deterministic.
        rand = rng.random
        self._pay_seq += 1
        cday = day if self._day_start <= created < self._day_start + DAY_US else ist_day_of(created)
        code = self._day_codes.get(cday)
        if code is None:
            code = self._day_codes[cday] = f"MOJO{cday.year % 10}{cday.timetuple().tm_yday:03d}R{self.mi:02d}A"
        p = PaymentModel(f"{code}{(self._pay_seq * 7919 + 104729) % 10**9:09d}", created, self.m, amount, title,
                         ptype, buyer, product, link, None if order is None else order.id)
        rates = self.rates
        if rand() < rates.international_share:
            p.instrument, p.billing = _pick(rand, catalog.INTERNATIONAL_INSTRUMENTS)
            p.intl = True
        else:
            i = bisect.bisect_right(self._instr_cum, rand() * self._instr_total)
            instrument, _, billings = catalog.DOMESTIC_INSTRUMENTS[min(i, len(catalog.DOMESTIC_INSTRUMENTS) - 1)]
            p.instrument, p.billing = instrument, _pick(rand, billings)
            p.intl = False
        if outcome is None:
            u = rand()
            outcome = ("abandon" if u < rates.abandoned_rate
                       else "fail" if u < rates.abandoned_rate + rates.failure_rate else "success")
        if outcome != "abandon":
            u = rand()
            if u < 0.85:
                delay = 3 * US + int(rand() * 87 * US)
            elif u < 0.97:
                delay = 2 * MINUTE_US + int(rand() * 28 * MINUTE_US)
            else:
                delay = HOUR_US + int(rand() * 5 * HOUR_US)
            p.resolved = created + delay
            p.status = outcome == "success"
            if outcome == "fail":
                p.failure = _pick(rand, catalog.FAILURES)
        if p.status is True:
            self._invoice_seq += 1
            p.invoice = self._invoice_seq
            self._plan_settlement(rng, p, cday)
        self.sink.add(p, p.resolved, p.refund_at)
        if cday == day:
            return p, 1
        self.preplaced[cday] += 1
        return p, 0

    def _plan_settlement(self, rng: random.Random, p: PaymentModel, cday: dt.date) -> None:
        """Schedule a successful payment's payout, hold and refund (all T+n business days)."""
        rates = self.rates
        sday = settlement_day(cday)
        p.settle_day = sday
        self.settle[sday].append(p)
        if rng.random() < rates.hold_rate:
            p.held = True
            outcome_day = add_business_days(sday, rng.randint(2, 8))
            self.outcomes[outcome_day].append(p)
            if rng.random() < rates.held_refund_share:
                p.outcome = "refund"
                # the review ends that morning, before the payout is made (11:00 IST or later)
                p.refund_at = ist_day_start(outcome_day) + 9 * HOUR_US + rng.randrange(90 * MINUTE_US)
            else:
                p.outcome = "release"
        else:
            if rng.random() < rates.refund_after_payout_rate:
                refund_day = add_business_days(sday, rng.randint(1, 10))
                p.refund_at = ist_day_start(refund_day) + 10 * HOUR_US + rng.randrange(8 * HOUR_US)
                self.refunds[add_business_days(refund_day, 1)].append(p)
            # commissions only on payments that are paid out normally (never on held ones)
            if rng.random() < rates.affiliate_rate:
                p.affiliate = money(p.amount * Decimal("0.10"))
            if rng.random() < rates.partner_rate:
                p.partner = money(p.amount * Decimal("0.01"))
        if p.refund_at is not None:
            p.case = f"{self.m.base_url}/v2/cases/{rng.getrandbits(64):016x}/"

    def _standalone(self, rng: random.Random, day: dt.date, start: int, sellable: list) -> int:
        created = start + self._time_in_day(rng)
        i = bisect.bisect_right(self._ptype_cum, rng.random() * self._ptype_total)
        ptype = catalog.STANDALONE_PAYMENT_TYPES[min(i, len(catalog.STANDALONE_PAYMENT_TYPES) - 1)][0]
        product = link = None
        if ptype == "Dashboard_Product" and sellable:
            product = _pick(rng.random, sellable)
            title, amount = product.title, product.base_price
        else:
            if ptype == "Dashboard_Product":
                ptype = "Dashboard_Link"
            amount = self._amount(rng)
            if ptype in catalog.LINK_PAYMENT_TYPES:
                link, title = _pick(rng.random, self.links)
            elif ptype == "mojoPOS":
                title = "QR code payment"
            else:
                title = _pick(rng.random, catalog.LINK_TITLES)
        _, counted = self._payment(rng, day, created, amount, title, ptype, self.buyers.pick(rng),
                                   product=product, link=link)
        return counted

    # Orders -------------------------------------------------------------------------------
    def _order(self, rng: random.Random, day: dt.date, start: int, remaining: int, sellable: list) -> int:
        t0 = start + self._time_in_day(rng)
        order = OrderModel(_uuid4(rng.getrandbits(128)), t0, self.m)
        order.buyer = self.buyers.pick(rng)
        u = rng.random()
        n_items = 1 if u < 0.7 else 2 if u < 0.92 else 3
        products = rng.sample(sellable, min(n_items, len(sellable)))
        shipping_total = ZERO
        for product in products:
            quantity = 1 if rng.random() < 0.8 else 2 + int(rng.random() * 2)
            variants = []
            unit_price = product.base_price
            if product.variants:
                for v_index, (name, values) in enumerate(product.variants.items()):
                    k = int(rng.random() * len(values))
                    variants.append((name, values[k]))
                    # the first option sets the price across [min_price, max_price]
                    if v_index == 0 and len(values) > 1 and product.max_price > product.min_price:
                        step = (product.max_price - product.min_price) * k / (len(values) - 1)
                        unit_price = money(product.min_price + step.to_integral_value(rounding=ROUND_HALF_UP))
            shipping = None
            if product.requires_shipping and rng.random() < 0.6:
                shipping = paise(_pick(rng.random, (49, 79, 99)) * 100)
                shipping_total += shipping
            discount = None
            if rng.random() < 0.1:
                discount = money(unit_price * quantity * Decimal("0.10"))
            order.items.append(OrderItem(product, unit_price, quantity, shipping, discount, variants))
        order.amount = sum((item.amount for item in order.items), ZERO)
        first = products[0].title
        order.title = first if len(products) == 1 else f"{first} and {len(products) - 1} more"

        rates = self.rates
        u = rng.random()
        plan = "normal"
        if not self._partial_made:
            # every merchant has at least one deposit-only order (the short_paid_order anomaly
            # and the reconciliation tests need one): its first order
            plan = "partial"
        elif remaining > 1:
            if u < rates.order_partial_rate:
                plan = "partial"
            elif u < rates.order_partial_rate + rates.order_late_payment_rate:
                plan = "late"
            elif u < rates.order_partial_rate + rates.order_late_payment_rate + rates.order_retry_rate:
                plan = "retry"
        first_at = t0 + 20 * US + int(rng.random() * 280 * US)
        attempts: list[tuple[int, Decimal, str | None]]  # (at, amount, outcome)
        if plan == "normal":
            attempts = [(first_at, order.amount, None)]
        elif plan == "retry":
            attempts = [(first_at, order.amount, "fail"),
                        (first_at + 2 * MINUTE_US + int(rng.random() * 8 * MINUTE_US), order.amount, "success")]
        elif plan == "late":
            attempts = [(first_at, order.amount, "fail" if rng.random() < 0.5 else "abandon"),
                        (t0 + 2 * HOUR_US + int(rng.random() * 94 * HOUR_US), order.amount, "success")]
        else:  # partial: a deposit is paid, the balance never arrives
            attempts = [(first_at, money(order.amount / 2), "success")]
            self._partial_made = True

        i = bisect.bisect_right(self._otype_cum, rng.random() * self._otype_total)
        ptype = catalog.ORDER_PAYMENT_TYPES[min(i, len(catalog.ORDER_PAYMENT_TYPES) - 1)][0]
        counted = 0
        paid = ZERO
        for at, amount, outcome in attempts:
            p, c = self._payment(rng, day, at, amount, order.title, ptype, order.buyer, outcome=outcome,
                                 product=products[0], order=order)
            counted += c
            order.payments.append(p)
            order.times.append(p.key)
            if p.resolved is not None:
                order.times.append(p.resolved)
            if p.status is True:
                paid += p.amount
                if paid >= order.amount:
                    resolved = p.resolved
                    if resolved is None:
                        raise RuntimeError(f"payment {p.id} of order {order.id} succeeded without a resolution time")
                    # the payment that completes the order carries its shipping and its purchases
                    p.ship = shipping_total
                    for item in order.items:
                        item.product.purchases.append((resolved, item.quantity))
                        self.sink.touch(item.product, resolved)
        self.sink.add(order, *order.times)
        return counted

    # Products -----------------------------------------------------------------------------
    def _new_product(self, rng: random.Random, created: int, catalogue: bool) -> ProductModel:
        n = len(self.products)
        template = catalog.PRODUCTS[self._templates[n % len(self._templates)]]
        title, description, lo, hi, shipping, kind, variants = template
        batch = n // len(self._templates)
        if batch:
            title = f"{title} (Batch {batch + 1})"
        slug = base = _slugify(title)
        k = 2
        while slug in self._slugs:
            slug, k = f"{base}-{k}", k + 1
        self._slugs.add(slug)
        p = ProductModel(slug, created, self.m)
        p.title = title
        p.description = description
        p.kind_of = kind
        p.variants = variants
        p.base_price = p.min_price = paise(lo * 100)
        p.max_price = paise(hi * 100)
        p.pwyw = kind == "digital" and rng.random() < 0.2
        p.limit_quantity = rng.randint(20, 60) if kind == "event" else (
            rng.randint(50, 500) if rng.random() < 0.15 else None)
        p.discount_public = rng.random() < 0.15
        p.requires_shipping = shipping
        p.ships_within_days = rng.randint(1, 7) if shipping else None
        if kind == "event":
            begins = created + rng.randrange(10, 40) * DAY_US + rng.randrange(8) * HOUR_US
            p.start_date = iso(begins)
            p.end_date = iso(begins + (DAY_US if "Weekend" in title else 90 * MINUTE_US))
            p.venue = f"{rng.randint(1, 99)}, {rng.choice(catalog.STREETS)}, {self.m.city or 'Bengaluru'}"
            p.timezone = "Asia/Kolkata"
        else:
            p.start_date = p.end_date = p.venue = p.timezone = None
        p.custom_note = "" if rng.random() < 0.7 else "Thank you! We will be in touch shortly."
        p.live_at = created + rng.randrange(HOUR_US, 30 * HOUR_US)
        p.archived_at = None
        if catalogue:
            if rng.random() < 0.1:
                p.archived_at = ist_day_start(self.first_day) + rng.randrange(20 * DAY_US)
        else:
            if rng.random() < 0.1:
                p.live_at = None  # stuck in moderation
            elif rng.random() < 0.05:
                p.archived_at = p.live_at + rng.randrange(5 * DAY_US, 30 * DAY_US)
        for position in range(rng.choice((0, 1, 1, 2, 3))):
            self._cover_seq += 1
            media = f"{self.m.base_url}/media/products/{slug}/cover-{position + 1}"
            p.covers.append({
                "id": (self.mi + 1) * 1_000_000 + self._cover_seq,
                "image": f"{media}.jpg",
                "thumbnail": f"{media}-thumb.jpg",
                "position": position,
            })
        self.products.append(p)
        self.sink.add(p, p.live_at, p.archived_at)
        return p

    # Payouts ------------------------------------------------------------------------------
    def _build_payout(self, day: dt.date) -> None:
        """The payout of ``day``: settles T+3 payments, holds, releases, refunds."""
        settled = self.settle.pop(day, [])
        outcomes = self.outcomes.pop(day, [])
        refunds = self.refunds.pop(day, [])
        if not (settled or outcomes or refunds):
            return
        if not is_business_day(day):
            raise RuntimeError(f"a payout was scheduled on {day}, which is not a business day")
        rng = _rng(self.seed, self.mi, day, "payout")
        paid_out_at = ist_day_start(day) + 11 * HOUR_US + rng.randrange(120 * MINUTE_US)
        pid = f"MOJO{day.year % 10}{day.timetuple().tm_yday:03d}{self.mi:03d}M{rng.randrange(10**8):08d}"
        payout = PayoutModel(pid, paid_out_at, day, self.m)
        for p in settled:
            fee, tax = fees_for(p.amount, p.intl)
            payout.sales += p.amount
            payout.fee += fee
            payout.tax += tax
            payout.affiliate += p.affiliate
            payout.partner += p.partner
            payout.shipping += p.ship
            payout.settled_ids.append(p.id)
            if p.held:
                payout.held += p.amount - fee - tax
                payout.held_ids.append(p.id)
            p.payout = payout
            self.sink.touch(p, paid_out_at)
        paid = (payout.sales - payout.fee - payout.tax - payout.held - payout.affiliate - payout.partner)
        later = add_business_days(day, 1)
        # Releases first (they only add), then refunds while the payout stays non-negative; a
        # refund that would make it negative waits for the next business day's payout.
        for p in outcomes:
            if p.outcome == "release":
                fee, tax = fees_for(p.amount, p.intl)
                payout.reversed += p.amount - fee - tax
                paid += p.amount - fee - tax
                payout.released_ids.append(p.id)
        for p in outcomes:
            if p.outcome == "refund":
                fee, tax = fees_for(p.amount, p.intl)
                net = p.amount - fee - tax
                if paid + net - p.amount < ZERO:
                    self.outcomes[later].append(p)
                    continue
                payout.reversed += net
                payout.refunded += p.amount
                paid += net - p.amount
                payout.held_refunded_ids.append(p.id)
        for p in refunds:
            if paid - p.amount < ZERO:
                self.refunds[later].append(p)
                continue
            payout.refunded += p.amount
            paid -= p.amount
            payout.refunded_ids.append(p.id)
        if not (payout.settled_ids or payout.released_ids or payout.held_refunded_ids or payout.refunded_ids):
            return
        payout.paid = paid
        self.payouts[pid] = payout
        self.sink.add(payout)

    # Anomalies ----------------------------------------------------------------------------
    def orphan_payment(self, created: int, amount: Decimal, visible_at: int, rng: random.Random) -> PaymentModel:
        """A successful payment linked to a payout that no payout list will ever show.

        Used by the ``orphan_payment`` anomaly; ``visible_at`` is when its (ghost) payout is
        paid out, so the payment shows the payout reference from then on.
        """
        ghost_day = ist_day_of(visible_at)
        ghost_id = (f"MOJO{ghost_day.year % 10}{ghost_day.timetuple().tm_yday:03d}{self.mi:03d}X"
                    f"{rng.randrange(10**8):08d}")
        ghost = PayoutModel(ghost_id, visible_at, ghost_day, self.m)
        self._pay_seq += 1
        self._invoice_seq += 1
        cday = ist_day_of(created)
        p = PaymentModel(
            f"MOJO{cday.year % 10}{cday.timetuple().tm_yday:03d}R{self.mi:02d}A"
            f"{(self._pay_seq * 7919 + 104729) % 10**9:09d}", created, self.m, amount,
            _pick(rng.random, catalog.LINK_TITLES), "api_rap", self.buyers.pick(rng))
        p.instrument, p.billing, p.intl = "UPI", "UPI", False
        p.resolved = created + 30 * US
        p.status = True
        p.invoice = self._invoice_seq
        p.payout = ghost
        return p
