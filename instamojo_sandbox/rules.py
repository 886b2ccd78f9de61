"""Instamojo's business rules: fees, GST, rounding, business days, settlement dates.

docs/api-behaviour.md ("Money and settlement") states each rule in this project's words, with
Instamojo's public pages cited where they exist (fees and GST: Instamojo's help centre article
"Pricing: Transaction Fee"; T+3 business days: "Payouts: When and How") and says plainly which
rules are this project's assumptions (the rounding, the holiday calendar, the payout identity).
The generator only ever computes money and dates through these functions, so a test can check
the served data against them independently.

Money is :class:`decimal.Decimal` quantized to the paisa (two places), never a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

#: Instamojo is in India: business days are counted in Asia/Kolkata, not UTC.
IST = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC

PAISA = Decimal("0.01")
ZERO = Decimal("0.00")

#: Domestic fee: 2% + ₹3 per transaction (Instamojo's pricing, docs/api-behaviour.md [fees]).
DOMESTIC_RATE = Decimal("0.02")
#: International cards and Amex: 3% + ₹3 (the same page).
INTERNATIONAL_RATE = Decimal("0.03")
FIXED_FEE = Decimal("3.00")
#: GST at 18% is charged on the fee (the same page).
GST_RATE = Decimal("0.18")

#: Payouts land T+3 *business* days after the payment (docs/api-behaviour.md [payouts]).
SETTLEMENT_BUSINESS_DAYS = 3

# holidays.India() with its default categories (public holidays); it grows its year range on
# demand, so one instance serves every date the sandbox ever asks about.
_INDIA_HOLIDAYS = holidays.India()


def money(value: Decimal | int | str) -> Decimal:
    """Return ``value`` as a Decimal rounded half-up to the paisa ("1.005" → 1.01)."""
    return Decimal(value).quantize(PAISA, rounding=ROUND_HALF_UP)


def fmt_money(value: Decimal) -> str:
    """Format a Decimal amount the way the API serves it: a string with two places ("9494.00")."""
    return str(value.quantize(PAISA, rounding=ROUND_HALF_UP))


def fee_rate(international_or_amex: bool) -> Decimal:
    """The percentage part of the transaction fee: 3% for international cards and Amex, else 2%."""
    return INTERNATIONAL_RATE if international_or_amex else DOMESTIC_RATE


@lru_cache(maxsize=65536)
def fees_for(amount: Decimal, international_or_amex: bool) -> tuple[Decimal, Decimal]:
    """Fee and GST charged on a successful payment of ``amount``.

    fee = rate × amount + ₹3, GST = 18% of the fee, each rounded half-up to the paisa.
    Instamojo's own example: ₹1000 domestic → fee 23.00, GST 4.14, net 972.86.
    """
    fee = money(amount * fee_rate(international_or_amex) + FIXED_FEE)
    tax = money(fee * GST_RATE)
    return fee, tax


@lru_cache(maxsize=65536)
def fee_strings(amount: Decimal, international_or_amex: bool) -> tuple[str, str]:
    """:func:`fees_for` formatted as the API serves them (cached: amounts repeat a lot)."""
    fee, tax = fees_for(amount, international_or_amex)
    return str(fee), str(tax)


def net_amount(amount: Decimal, international_or_amex: bool) -> Decimal:
    """What the merchant receives for a successful payment: amount − fee − GST."""
    fee, tax = fees_for(amount, international_or_amex)
    return amount - fee - tax


@lru_cache(maxsize=8192)
def is_business_day(day: dt.date) -> bool:
    """True on Monday–Friday unless the day is an Indian public holiday (``holidays.India``)."""
    return day.weekday() < 5 and day not in _INDIA_HOLIDAYS


def holiday_name(day: dt.date) -> str | None:
    """The name of the Indian public holiday on ``day``, or None."""
    return _INDIA_HOLIDAYS.get(day)


def add_business_days(day: dt.date, n: int) -> dt.date:
    """The ``n``-th business day strictly after ``day`` (n ≥ 1)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    current = day
    while n:
        current += dt.timedelta(days=1)
        if is_business_day(current):
            n -= 1
    return current


def next_business_day_on_or_after(day: dt.date) -> dt.date:
    """``day`` itself if it is a business day, else the next business day."""
    while not is_business_day(day):
        day += dt.timedelta(days=1)
    return day


def ist_date(moment: dt.datetime) -> dt.date:
    """The calendar date of an aware datetime in Asia/Kolkata."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the sandbox only deals in timezone-aware instants")
    return moment.astimezone(IST).date()


def settlement_date(created_at: dt.datetime) -> dt.date:
    """The date (Asia/Kolkata) of the payout that settles a successful payment.

    The 3rd business day strictly after the payment's date in Asia/Kolkata; weekends and
    Indian public holidays are skipped. A payment at 23:30 UTC on a Tuesday is already
    Wednesday in India, so it settles one business day later than its UTC date suggests.
    """
    return add_business_days(ist_date(created_at), SETTLEMENT_BUSINESS_DAYS)


def ist_midnight(day: dt.date) -> dt.datetime:
    """00:00 in Asia/Kolkata on ``day``, as an aware UTC datetime."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=IST).astimezone(UTC)


def payout_identity_residual(payout: dict) -> Decimal:
    """paid − (sales − fee − tax − held + reversed − refunded − affiliate − partner).

    Zero for every payout the sandbox generates (the identity it documents in
    docs/api-behaviour.md); ``shipping_fee`` is informational and outside the identity.
    ``payout`` is a payout as served (amounts as strings) or with Decimal values.
    """

    def d(key: str) -> Decimal:
        return Decimal(str(payout[key]))

    expected = (
        d("sales_amount")
        - d("fee_amount")
        - d("total_tax_amount")
        - d("held_amount")
        + d("reversed_amount")
        - d("refunded_amount")
        - d("affiliate_commission_amount")
        - d("partner_commission_amount")
    )
    return d("paid_amount") - expected
