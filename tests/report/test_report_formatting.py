"""How the report writes money and time: rupees grouped the Indian way from the exact Decimal,
dates and times in IST, and the period's defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from report.formatting import count, day, indian_digits, inr, moment, plain
from report.marts import ReportError
from report.model import choose_merchants, choose_period


@pytest.mark.parametrize("value, text", [
    ("0", "₹0.00"),
    ("5", "₹5.00"),
    ("999.99", "₹999.99"),
    ("1000", "₹1,000.00"),
    ("12345.6", "₹12,345.60"),
    ("123456.78", "₹1,23,456.78"),
    ("1234567.00", "₹12,34,567.00"),
    ("12345678.90", "₹1,23,45,678.90"),
    ("123456789012.34", "₹1,23,45,67,89,012.34"),
    ("-500", "−₹500.00"),
    ("-123456.78", "−₹1,23,456.78"),
    ("0.005", "₹0.00"),  # banker's rounding to the paisa
    ("0.015", "₹0.02"),
])
def test_rupees_the_indian_way(value, text):
    assert inr(Decimal(value)) == text


def test_money_is_never_a_float():
    with pytest.raises(TypeError):
        inr(1234.5)
    assert inr(None) == "unknown"
    assert inr(Decimal("10"), sign=True) == "+₹10.00"
    # exact to the paisa at sizes where a float is not
    assert inr(Decimal("90071992547409.93")) == "₹9,00,71,99,25,47,409.93"
    assert plain(Decimal("90071992547409.93")) == "90071992547409.93"
    assert plain(Decimal("-3")) == "-3.00" and plain(None) == ""


def test_counts_and_digits():
    assert indian_digits(0) == "0"
    assert indian_digits(100000) == "1,00,000"
    assert count(1234567) == "12,34,567"
    assert count(-1000) == "−1,000"


def test_times_in_ist():
    # 18:30 UTC is midnight in India: the date moves to the next day
    assert moment(datetime(2024, 11, 17, 18, 30, tzinfo=UTC)) == "Mon 18 Nov 2024, 00:00 IST"
    assert moment(datetime(2024, 11, 17, 18, 29, tzinfo=UTC)) == "Sun 17 Nov 2024, 23:59 IST"
    assert moment(datetime(2024, 11, 17, 18, 30)) == "Mon 18 Nov 2024, 00:00 IST"  # naive is UTC
    assert day(date(2024, 1, 26)) == "Fri 26 Jan 2024"
    assert moment(None) == "—"


def test_the_period():
    as_of = date(2024, 11, 18)
    today = date(2026, 1, 1)
    p = choose_period(None, None, as_of, today)
    assert (p.start, p.end, p.days, p.defaulted) == (date(2024, 10, 20), as_of, 30, True)
    p = choose_period(date(2024, 11, 1), None, as_of, today)
    assert (p.start, p.end) == (date(2024, 11, 1), as_of)
    p = choose_period(None, date(2024, 11, 10), as_of, today)
    assert (p.start, p.end) == (date(2024, 10, 12), date(2024, 11, 10))
    p = choose_period(date(2025, 1, 1), None, as_of, today)  # after the data: 30 days from --from
    assert (p.start, p.end) == (date(2025, 1, 1), date(2025, 1, 30))
    assert choose_period(None, None, None, today).end == today
    with pytest.raises(ReportError, match="--from 2024-11-19 is after --to 2024-11-18"):
        choose_period(date(2024, 11, 19), as_of, as_of, today)


def test_merchants():
    assert choose_merchants(["a", "b"], None) == ["a", "b"]
    assert choose_merchants(["a", "b"], ["b", "b"]) == ["b"]
    with pytest.raises(ReportError, match="unknown merchant\\(s\\) c; merchants in the warehouse: a, b"):
        choose_merchants(["a", "b"], ["c"])
    with pytest.raises(ReportError, match="the marts are empty"):
        choose_merchants([], ["c"])
