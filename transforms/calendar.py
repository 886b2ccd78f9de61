"""The settlement calendar: which days are business days and when a payment of a given day is due.

Generated in Python from the `holidays` package (SQL has no holiday calendar) and written as a
table the SQL models join on, so the settlement rule is one equi-join, not a loop per payment.

The rule (docs/marts.md, "The settlement rule"; the sandbox implements the same,
docs/api-behaviour.md): a payment's expected payout date is the N-th
business day (N = 3, "T+3") *strictly after* the payment's date in Asia/Kolkata; a business day is
Monday–Friday and not a holiday of `holidays.India` (national calendar).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays

from transforms.settings import DEFAULT_SETTINGS, ReconciliationSettings


@dataclass(frozen=True)
class CalendarDay:
    """One row of the settlement calendar."""

    calendar_date: date
    is_business_day: bool
    holiday_name: str | None
    # business days on or before this date, counted from the calendar's first day: the
    # difference of two numbers is the business days between two dates
    business_day_number: int
    # for a payment made on this date (Asia/Kolkata)
    expected_payout_date: date
    overdue_after_date: date


@lru_cache(maxsize=32)
def _package_holidays(country: str, subdivision: str | None, first_year: int, last_year: int) -> tuple[tuple[date, str], ...]:
    # computing a country's holidays takes ~0.1 s a call; every rebuild asks for the same years
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=list(range(first_year, last_year + 1)))
    return tuple(sorted(calendar.items()))


def holiday_names(settings: ReconciliationSettings, years: range) -> dict[date, str]:
    """Non-business dates (other than weekends) with their names, for `years`."""
    names = dict(_package_holidays(settings.holiday_country, settings.holiday_subdivision, years.start, years.stop - 1))
    for extra in settings.extra_holidays:
        names.setdefault(extra, "extra holiday (transforms.extra_holidays)")
    return names


def settlement_calendar(first: date, last: date, settings: ReconciliationSettings) -> list[CalendarDay]:
    """Calendar rows for every date from `first` to `last` inclusive.

    Business days are computed beyond `last` as far as needed, so the expected payout and overdue
    dates of the last days are right even across a long holiday stretch.
    """
    if last < first:
        raise ValueError(f"calendar range is empty: {first} .. {last}")
    lookahead = settings.settlement_business_days + settings.overdue_grace_business_days
    # a week holds at least one business day in any real calendar; 3 weeks per business day
    # needed is a generous bound, checked below
    horizon = last + timedelta(days=21 * (lookahead + 1))
    names = holiday_names(settings, range(first.year, horizon.year + 1))

    days: list[date] = []
    day = first
    while day <= horizon:
        days.append(day)
        day += timedelta(days=1)
    business = [d.weekday() < 5 and d not in names for d in days]
    business_dates = [d for d, b in zip(days, business, strict=True) if b]

    rows: list[CalendarDay] = []
    number = 0
    next_index = 0  # index into business_dates of the first business day strictly after `day`
    for day, is_business in zip(days, business, strict=True):
        if day > last:
            break
        if is_business:
            number += 1
        while next_index < len(business_dates) and business_dates[next_index] <= day:
            next_index += 1
        expected_index = next_index + settings.settlement_business_days - 1
        overdue_index = expected_index + settings.overdue_grace_business_days
        if overdue_index >= len(business_dates):
            raise ValueError(f"no {lookahead} business days within 3 weeks each after {day}: check the holiday calendar")
        rows.append(
            CalendarDay(
                calendar_date=day,
                is_business_day=is_business,
                holiday_name=names.get(day),
                business_day_number=number,
                expected_payout_date=business_dates[expected_index],
                overdue_after_date=business_dates[overdue_index],
            )
        )
    return rows


def expected_payout_date(payment_date: date, settings: ReconciliationSettings = DEFAULT_SETTINGS) -> date:
    """The expected payout date of a payment made on `payment_date` (Asia/Kolkata)."""
    return settlement_calendar(payment_date, payment_date, settings)[0].expected_payout_date
