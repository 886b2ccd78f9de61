"""How the report writes money and time for a person in India.

Money is `Decimal` end to end: rupees are printed from the exact decimal value, grouped the Indian
way (lakh and crore: ₹1,23,456.78), never through a float. Dates and times are Asia/Kolkata
(IST), whatever zone the warehouse hands back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
PAISA = Decimal("0.01")
MINUS = "\u2212"  # a real minus sign, not a hyphen


def money(value: Decimal | int | str | None) -> Decimal | None:
    """The value as a Decimal rounded to the paisa (None stays None). Floats are refused: a
    float in a money path is a bug."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError(f"money must not be a float: {value!r}")
    return Decimal(value).quantize(PAISA, rounding=ROUND_HALF_EVEN)


def indian_digits(whole: int) -> str:
    """Group a non-negative integer the Indian way: the last three digits, then pairs
    (12345678 → '1,23,45,678')."""
    digits = str(whole)
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    if head:
        pairs.insert(0, head)
    return ",".join(pairs + [tail])


def inr(value: Decimal | int | str | None, *, unknown: str = "unknown", sign: bool = False) -> str:
    """Rupees with paise, Indian grouping: ₹1,23,456.78; negative −₹500.00; None → `unknown`.
    `sign` puts a + before positive amounts (for changes)."""
    amount = money(value)
    if amount is None:
        return unknown
    negative = amount < 0
    whole, _, paise = f"{abs(amount):.2f}".partition(".")
    text = f"₹{indian_digits(int(whole))}.{paise}"
    if negative:
        return MINUS + text
    return ("+" + text) if sign and amount > 0 else text


def count(value: int) -> str:
    """A count, grouped the Indian way (1,23,456)."""
    return (MINUS if value < 0 else "") + indian_digits(abs(int(value)))


def plain(value: Decimal | None) -> str:
    """Money as an exact decimal string for machines (CSV, data attributes): '1234.50', '' for None."""
    amount = money(value)
    return "" if amount is None else f"{amount:.2f}"


def to_ist(moment: datetime) -> datetime:
    """An aware datetime in IST; a naive one is taken as UTC (how the warehouse stores time)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(IST)


def day(value: date | None) -> str:
    """'Mon 18 Nov 2024'."""
    if value is None:
        return "—"
    return f"{value:%a} {value.day} {value:%b %Y}"


def short_day(value: date) -> str:
    """'18 Nov' (chart axes)."""
    return f"{value.day} {value:%b}"


def moment(value: datetime | None) -> str:
    """'Mon 18 Nov 2024, 14:05 IST'."""
    if value is None:
        return "—"
    local = to_ist(value)
    return f"{day(local.date())}, {local:%H:%M} IST"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{count(n)} {word if n == 1 else (many or word + 's')}"
