"""What a check run may be told: freshness, the payout residual tolerance, where Data Docs go,
which suites run. The tolerance is not a `[checks]` key: it is `[transforms] payout_tolerance`,
the one the marts flag `payout_residual` exceptions with, passed in by the pipeline's check step
(two tolerances could disagree: a payout balanced in the marts but failing its check). Cheap to import (no great-expectations here), so a CLI can build it for --help.

`.dlt/config.toml` holds the same settings under `[checks]` (see `CheckSettings.from_mapping`):

    [checks]
    freshness_max_age_hours = 48          # 0 or absent = freshness off (the demo turns it off)
    docs_dir = "data/check-docs"
    suites = []                           # empty = every suite; or e.g. ["raw", "marts.payout_reconciliation"]
    required_tables = ["payments", "payouts"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

DEFAULT_DOCS_DIR = Path("data/check-docs")

# Raw tables that must hold rows: without payments and payouts there is nothing to reconcile, so
# an empty (or missing) one means the sync failed or the merchant granted too little. Every other
# raw table may legitimately be missing or empty (a merchant who did not grant orders:read has
# no orders table); see docs/checks.md, "Missing and empty tables".
DEFAULT_REQUIRED_TABLES: tuple[str, ...] = ("payments", "payouts")

_KEYS = {
    "freshness_max_age_hours",
    "docs_dir",
    "suites",
    "required_tables",
    "offending_ids_shown",
}


@dataclass(frozen=True)
class CheckSettings:
    """Settings of one check run.

    freshness_max_age: the newest payment of every merchant must be at most this old
        (`None` = freshness off; the demo's sandbox history is dated in the past).
    payout_residual_tolerance: the largest |residual| (₹) a payout may show in
        `payout_reconciliation`; a Decimal with at most two decimal places.
    docs_dir: where great-expectations' HTML Data Docs are written (`None` = do not write).
    suites: names to run (`"raw.payments"`, or a layer, `"raw"` / `"marts"`); `None` = all.
    required_tables: raw tables that must exist and hold rows (error if not).
    offending_ids_shown: how many offending ids the summary names per failing expectation.
    now: the clock freshness is measured against (`None` = the current time; tests pin it).
    merchants: judge only these merchants' rows (the ones a sync changed; their marts were
        rebuilt), `None` = every merchant (a full pass: `make check`, the nightly run).
    """

    freshness_max_age: dt.timedelta | None = None
    payout_residual_tolerance: Decimal = Decimal("0.00")
    docs_dir: Path | None = DEFAULT_DOCS_DIR
    suites: tuple[str, ...] | None = None
    required_tables: tuple[str, ...] = DEFAULT_REQUIRED_TABLES
    offending_ids_shown: int = 5
    now: dt.datetime | None = None
    merchants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        tol = self.payout_residual_tolerance
        if not isinstance(tol, Decimal):
            # a float tolerance would already be inexact (0.3 is 0.29999…): refuse it outright
            raise TypeError(
                f"checks: payout_residual_tolerance must be a Decimal (or a string such as \"0.05\"), got {tol!r}"
            )
        if not tol.is_finite() or tol < 0 or tol != tol.quantize(Decimal("0.01")):
            raise ValueError(
                f"checks: payout_residual_tolerance must be ≥ 0 with at most two decimal places, got {tol}"
            )
        if self.freshness_max_age is not None and self.freshness_max_age <= dt.timedelta(0):
            raise ValueError(f"checks: freshness_max_age must be positive, got {self.freshness_max_age}")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("checks: `now` must be timezone-aware")
        if self.offending_ids_shown < 1:
            raise ValueError("checks: offending_ids_shown must be at least 1")
        if isinstance(self.suites, str) or isinstance(self.required_tables, str):
            raise TypeError("checks: suites and required_tables are sequences of names, not one string")
        if self.suites is not None:
            object.__setattr__(self, "suites", tuple(self.suites))
        if self.merchants is not None:
            if isinstance(self.merchants, str) or not all(isinstance(m, str) for m in self.merchants):
                raise TypeError("checks: merchants is a sequence of merchant names")
            object.__setattr__(self, "merchants", tuple(self.merchants))
        object.__setattr__(self, "required_tables", tuple(self.required_tables))
        if self.docs_dir is not None:
            object.__setattr__(self, "docs_dir", Path(self.docs_dir))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None, **overrides: Any) -> CheckSettings:
        """Build settings from the `[checks]` section of `.dlt/config.toml` (a mapping; missing
        keys keep their defaults), then apply `overrides` (CheckSettings field names, e.g.
        `freshness_max_age=None` for the demo). Unknown keys are an error, so typos surface."""
        section = dict(section or {})
        if "payout_residual_tolerance" in section:
            raise ValueError("checks: [checks] payout_residual_tolerance is no longer a setting: the checks use "
                             "[transforms] payout_tolerance, the tolerance the marts use; set it there")
        unknown = set(section) - _KEYS
        if unknown:
            raise ValueError(f"checks: unknown [checks] setting(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
        kwargs: dict[str, Any] = {}
        if "freshness_max_age_hours" in section:
            hours = section["freshness_max_age_hours"]
            if isinstance(hours, str):  # environment variables arrive as text
                try:
                    hours = float(hours) if hours.strip() else None
                except ValueError:
                    raise ValueError(f"checks: freshness_max_age_hours must be a number, got {hours!r}") from None
            if isinstance(hours, bool) or (hours is not None and (not isinstance(hours, (int, float)) or hours < 0)):
                raise ValueError(f"checks: freshness_max_age_hours must be a number ≥ 0, got {hours!r}")
            kwargs["freshness_max_age"] = dt.timedelta(hours=hours) if hours else None
        if "docs_dir" in section:
            kwargs["docs_dir"] = Path(section["docs_dir"]) if section["docs_dir"] else None
        if "suites" in section:
            kwargs["suites"] = tuple(_names(section["suites"], "suites")) or None
        if "required_tables" in section:
            kwargs["required_tables"] = tuple(_names(section["required_tables"], "required_tables"))
        if "offending_ids_shown" in section:
            kwargs["offending_ids_shown"] = int(section["offending_ids_shown"])
        return replace(cls(**kwargs), **overrides) if overrides else cls(**kwargs)

    @classmethod
    def from_dlt_config(cls, **overrides: Any) -> CheckSettings:
        """Read `[checks]` through dlt's config providers (`.dlt/config.toml` in the working
        directory, environment variables such as `CHECKS__FRESHNESS_MAX_AGE_HOURS`)."""
        import dlt

        section: dict[str, Any] = {}
        for key in sorted(_KEYS | {"payout_residual_tolerance"}):
            value: Any = dlt.config.get(f"checks.{key}")
            if value is not None:
                section[key] = value
        return cls.from_mapping(section, **overrides)



def _names(value: Any, key: str) -> Iterable[str]:
    if isinstance(value, str):
        # environment variables arrive as strings: accept "raw,marts" as well as a TOML list
        value = [v for v in (s.strip() for s in value.strip("[]").replace('"', "").split(",")) if v]
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"checks: {key} must be a list of names, got {value!r}")
    return value
