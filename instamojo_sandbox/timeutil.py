"""Instants as integer microseconds since the Unix epoch (UTC), and their ISO-8601 form.

The store keeps every timestamp as an int (cheap to compare, hash and bisect); the API serves
them like the reference does: ``2019-05-20T09:30:23.808234Z`` (UTC, microseconds, ``Z``).
"""

from __future__ import annotations

import datetime as dt
import re
import time

US = 1_000_000
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: dt.datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give a timezone (e.g. UTC)")
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> dt.datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return _EPOCH + dt.timedelta(microseconds=us)


_DAY_PREFIX: dict[int, str] = {}
_CLOCK: list[str] = []  # "HH:MM:SS" for each second of a day, built on first use


def iso(us: int) -> str:
    """ISO-8601 in UTC with microseconds and ``Z``, as the API serves timestamps.

    Called for every record the sandbox renders (millions for a benchmark), hence the tables:
    a per-day "YYYY-MM-DDT" prefix and the 86,400 "HH:MM:SS" strings of a day.
    """
    seconds, micro = divmod(us, US)
    day, second = divmod(seconds, 86400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    if not _CLOCK:
        _CLOCK.extend(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
    return f"{prefix}{_CLOCK[second]}.{micro:06d}Z"


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_instant(text: str) -> dt.datetime:
    """Parse an ISO-8601 date-time (``Z`` or an offset; naive means UTC) or a date (midnight UTC).

    Raises ValueError with a readable message when ``text`` is not a date-time.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty date-time")
    if _DATE_ONLY.match(raw):
        day = dt.date.fromisoformat(raw)
        return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # A literal "+" in a query string decodes to a space; accept it back as the offset sign.
    raw = re.sub(r" (\d{2}:?\d{2})$", r"+\1", raw)
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_duration(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> int:
    """A duration in microseconds from days/hours/minutes/seconds (each may be fractional)."""
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total < 0:
        raise ValueError("the sandbox clock only moves forward")
    return round(total * US)
