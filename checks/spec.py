"""The vocabulary of the suites: an expectation (`Expect`), the plan a suite makes for one run
(`SuitePlan`: which SQL feeds its batch and what to expect of it), and what a plan may know
about the warehouse (`PlanContext`). No great-expectations import here: the suites are plain
data, turned into great-expectations objects only by `checks.runner`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from checks.settings import CheckSettings

Severity = Literal["error", "warn"]
Layer = Literal["raw", "marts"]

# dlt's variant columns: `<column>__v_<type>` holds values that did not fit the column's type
# (a money field the API sent as "N/A" lands in `amount__v_text`).
VARIANT_COLUMN = re.compile(r"^(?P<base>.+)__v_(?P<type>[a-z0-9_]+)$")


@dataclass(frozen=True)
class Expect:
    """One expectation of a suite.

    type: a class name in `great_expectations.expectations` (e.g. "ExpectColumnValuesToBeUnique").
    kwargs: its arguments, JSON-able (great-expectations stores them).
    severity: "error" fails the run; "warn" is reported only.
    what: one line saying what must hold (Data Docs and the summary show it).
    why: one line saying what goes wrong if it does not (docs/checks.md reuses it).
    id_columns: the columns that name an offending row in the summary (`None` = the suite's
        index columns, its primary key).
    detail_columns: the columns printed next to an offending row's id (`None` = the columns
        the expectation reads).
    doc: `what` for docs/checks.md when `what` holds this run's figures (a count, a cutoff).
    """

    type: str
    kwargs: Mapping[str, Any]
    severity: Severity
    what: str
    why: str
    id_columns: tuple[str, ...] | None = None
    detail_columns: tuple[str, ...] | None = None
    doc: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in ("error", "warn"):
            raise ValueError(f"severity must be 'error' or 'warn', got {self.severity!r}")
        if not self.what or not self.why:
            raise ValueError(f"{self.type}: an expectation needs a `what` and a `why`")

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this expectation reads (empty for table-level ones)."""
        kw = self.kwargs
        if "column" in kw:
            return (kw["column"],)
        if "column_A" in kw:
            return (kw["column_A"], kw["column_B"])
        if "column_list" in kw:
            return tuple(kw["column_list"])
        return ()

    @property
    def description(self) -> str:
        """What Data Docs print for this expectation: severity, what, and why."""
        return f"{self.severity.upper()}: {self.what} (why: {self.why})"


@dataclass(frozen=True)
class SuitePlan:
    """What one suite does in one run.

    sql: the query whose rows form the suite's batch (None when the suite cannot run).
    index_columns: the columns that identify a row (offending ids are read from them).
    expectations: what the batch must satisfy.
    skipped: expectations left out in this run and why (e.g. the table they need is absent).
    skip_reason: the whole suite does not apply (e.g. an optional table is absent).
    missing: the suite's table should exist and does not: the run fails.
    """

    table: str
    sql: str | None
    index_columns: tuple[str, ...]
    expectations: tuple[Expect, ...] = ()
    skipped: tuple[str, ...] = ()
    skip_reason: str | None = None
    missing: str | None = None


@dataclass
class PlanContext:
    """What a suite may know when it plans: the schemas, which tables exist, their columns,
    the dialect (for SQL), the settings and the clock."""

    raw_schema: str
    marts_schema: str
    dialect: str
    settings: CheckSettings
    now: dt.datetime
    # {(layer, table): [columns]} for every table that exists
    tables: dict[tuple[Layer, str], list[str]] = field(default_factory=dict)
    # runs one SQL query returning a single value (e.g. a count the expectations compare to)
    scalar: Callable[[str], Any] | None = None

    def schema(self, layer: Layer) -> str:
        return self.raw_schema if layer == "raw" else self.marts_schema

    def qualified(self, layer: Layer, table: str) -> str:
        """`"schema"."table"`, quoted for both dialects."""
        return f"{quote(self.schema(layer))}.{quote(table)}"

    def exists(self, layer: Layer, table: str) -> bool:
        return (layer, table) in self.tables

    def columns(self, layer: Layer, table: str) -> list[str]:
        return self.tables.get((layer, table), [])

    def merchant_filter(self, alias: str = "") -> str:
        """` WHERE …` restricting a query to the merchants judged this run (`settings.merchants`;
        empty when every merchant is judged)."""
        merchants = self.settings.merchants
        if merchants is None:
            return ""
        column = f"{alias}.merchant" if alias else "merchant"
        if not merchants:
            return " WHERE 1 = 0"
        return f" WHERE {column} IN (" + ", ".join("'" + m.replace("'", "''") + "'" for m in merchants) + ")"


@dataclass(frozen=True)
class SuiteSpec:
    """A suite, kept in code: its name (`<layer>.<table>`), the table it guards, a one-line
    description, and the function that plans it for a run."""

    name: str
    layer: Layer
    table: str
    description: str
    plan: Callable[[PlanContext], SuitePlan]


def quote(identifier: str) -> str:
    """Quote an SQL identifier (same spelling in DuckDB and Postgres)."""
    return '"' + identifier.replace('"', '""') + '"'
