"""Reconciliation settings: tolerances, the settlement rule's parameters and the holiday calendar.

Configured in `.dlt/config.toml`, section `[transforms]` (or environment variables such as
`TRANSFORMS__OVERDUE_GRACE_BUSINESS_DAYS`); `ReconciliationSettings.from_mapping` turns that
section into settings and rejects anything it does not know, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# Instamojo is an Indian payment gateway and settles to Indian bank accounts: business days are
# counted in Asia/Kolkata, not UTC (docs/marts.md, "The settlement rule").
SETTLEMENT_TIMEZONE = "Asia/Kolkata"

_PAISA = Decimal("0.01")

# how "now" is found per merchant when transforms.as_of is not a fixed moment (see the class)
AS_OF_MODES = ("latest_sync", "latest_activity")


@dataclass(frozen=True)
class ReconciliationSettings:
    """What the reconciliation marts treat as "matching", "due" and "overdue".

    - `payout_tolerance`: a payout is balanced while |paid − expected| and |sales − linked
      payments| are at most this (Decimal rupees; default 0.00 = exact to the paisa).
    - `order_tolerance`: an order is paid while |amount − successful payments| is at most this.
    - `settlement_business_days`: a payment's expected payout date is this many business days
      strictly after its date in Asia/Kolkata (Instamojo publishes T+3).
    - `overdue_grace_business_days`: a successful payment with no payout becomes `overdue` once
      the as-of date is past its expected payout date plus this many business days; a payout that
      arrives after that deadline is a `late_settlement`.
    - `holiday_country` / `holiday_subdivision`: the `holidays` package calendar whose days are
      not business days (default India's national calendar, `holidays.India`, as the sandbox).
    - `extra_holidays`: more non-business dates (e.g. a bank holiday the package lacks).
    - `as_of`: the moment "now" means for overdue checks: a timezone-aware datetime, or, per
      merchant, `"latest_sync"` (default: when its data was last fetched, the newest
      `_synced_at`; right for a live API) or `"latest_activity"` (the newest event its data
      shows: a payment created or updated, a payout paid out, an order created; for data whose
      clock is not the wall clock, such as the sandbox's). Either falls back to the build's
      clock when the merchant's rows carry no such time.
    """

    payout_tolerance: Decimal = Decimal("0.00")
    order_tolerance: Decimal = Decimal("0.00")
    settlement_business_days: int = 3
    overdue_grace_business_days: int = 1
    holiday_country: str = "IN"
    holiday_subdivision: str | None = None
    extra_holidays: tuple[date, ...] = ()
    as_of: datetime | str = "latest_sync"

    def __post_init__(self) -> None:
        for name in ("payout_tolerance", "order_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or isinstance(value, bool):
                raise TypeError(f"transforms.{name} must be a Decimal (money is never a float), got {value!r}")
            if not value.is_finite() or value < 0 or value != value.quantize(_PAISA):
                raise ValueError(f"transforms.{name} must be a non-negative amount in paise (e.g. 0.00), got {value}")
            if value >= Decimal("1e16"):
                raise ValueError(f"transforms.{name} does not fit DECIMAL(18,2): {value}")
        for name, minimum in (("settlement_business_days", 1), ("overdue_grace_business_days", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= 60:
                raise ValueError(f"transforms.{name} must be an integer from {minimum} to 60, got {value!r}")
        if not isinstance(self.holiday_country, str) or not self.holiday_country:
            raise ValueError(f"transforms.holiday_country must be a country code such as 'IN', got {self.holiday_country!r}")
        if not all(isinstance(d, date) and not isinstance(d, datetime) for d in self.extra_holidays):
            raise TypeError(f"transforms.extra_holidays must be dates, got {self.extra_holidays!r}")
        if isinstance(self.as_of, str):
            if self.as_of not in AS_OF_MODES:
                raise ValueError(f"transforms.as_of must be one of {list(AS_OF_MODES)} or a date-time, got {self.as_of!r}")
        elif not isinstance(self.as_of, datetime) or self.as_of.tzinfo is None:
            raise ValueError(f"transforms.as_of must be a timezone-aware datetime, got {self.as_of!r}")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> ReconciliationSettings:
        """Settings from a config section such as `.dlt/config.toml`'s `[transforms]`.

        Tolerances must be strings ("0.00") or integers: a TOML float (0.01) is rejected, since a
        float is never money here. Dates and datetimes may be TOML values or ISO strings.
        Missing keys keep their defaults; unknown keys are an error naming them.
        """
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown [transforms] setting(s) {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            if key in ("payout_tolerance", "order_tolerance"):
                kwargs[key] = _to_decimal(key, value)
            elif key in ("settlement_business_days", "overdue_grace_business_days"):
                kwargs[key] = _to_int(key, value)
            elif key == "extra_holidays":
                if isinstance(value, (str, date)):
                    value = [value]
                kwargs[key] = tuple(_to_date(key, v) for v in value)
            elif key == "as_of":
                kwargs[key] = value if value in AS_OF_MODES else _to_datetime(key, value)
            elif key == "holiday_subdivision":
                kwargs[key] = None if value in (None, "") else str(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


    @classmethod
    def from_dlt_config(cls, section: str = "transforms") -> ReconciliationSettings:
        """Settings from dlt's configuration: `.dlt/config.toml` section `[transforms]`, each key
        overridable by an environment variable (`TRANSFORMS__PAYOUT_TOLERANCE=0.05`), which a
        plain `dlt.config.get("transforms")` would not see."""
        import dlt

        values: dict[str, Any] = dict(dlt.config.get(section) or {})  # unknown keys are reported
        for f in fields(cls):
            value: Any = dlt.config.get(f"{section}.{f.name}")
            if value is not None:
                values[f.name] = value
        return cls.from_mapping(values)


def _to_decimal(key: str, value: Any) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"transforms.{key} = {value!r} is a float; write it as a string, e.g. \"{value:.2f}\"")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"transforms.{key} must be a string amount such as \"0.00\", got {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"transforms.{key} is not an amount: {value!r}") from None


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"transforms.{key} must be an integer, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int):
        return value
    raise TypeError(f"transforms.{key} must be an integer, got {value!r}")


def _to_date(key: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"transforms.{key} holds dates, not datetimes: {value!r}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"transforms.{key}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _to_datetime(key: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"transforms.{key}: {value!r} is not an ISO date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"transforms.{key}: {value!r} needs a UTC offset, e.g. 2024-01-31T18:00:00+05:30")
    return parsed.astimezone(UTC)


# the defaults, for function signatures
DEFAULT_SETTINGS = ReconciliationSettings()
