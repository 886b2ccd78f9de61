"""What a check run returns: per expectation a verdict (or the exception that prevented one),
per suite its status, and for the run `ok`, a compact text summary and the Data Docs path.
No great-expectations import here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SuiteStatus = Literal["passed", "warned", "failed", "skipped"]


@dataclass
class ExpectationResult:
    """One expectation's outcome.

    success: great-expectations' verdict (False when it raised or gave no verdict).
    raised: the error message when great-expectations (or the check itself) raised instead of
        judging: such a result always fails the run, whatever its severity.
    offending: a few offending rows, formatted (`m1/MOJO123 (payout_id='X')`); empty for
        table-level expectations.
    """

    suite: str
    table: str
    expectation: str  # great-expectations type, e.g. expect_column_values_to_be_unique
    what: str
    why: str
    severity: str
    success: bool
    raised: str | None = None
    unexpected_count: int | None = None
    element_count: int | None = None
    observed_value: Any = None
    offending: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return not self.success or self.raised is not None

    @property
    def blocking(self) -> bool:
        """Fails the run: a failed error, or any expectation that raised."""
        return self.failed and (self.severity == "error" or self.raised is not None)

    def describe(self) -> str:
        """One line: severity, table, expectation, how many rows, a few offending ids."""
        level = "ERROR" if self.blocking else "WARN "
        head = f"{level} {self.table}: {self.what}"
        if self.raised is not None:
            return f"{head} — could not be checked: {self.raised}"
        parts = []
        if self.unexpected_count is not None:
            of = f" of {self.element_count}" if self.element_count is not None else ""
            parts.append(f"{self.unexpected_count}{of} rows")
        elif self.observed_value is not None and not self.offending:
            parts.append(f"observed {self.observed_value}")
        if self.offending:
            parts.append("e.g. " + ", ".join(self.offending))
        return f"{head} — {'; '.join(parts)}" if parts else head


@dataclass
class SuiteResult:
    """One suite's outcome: its expectations' results, or why it did not run."""

    name: str
    table: str  # schema-qualified
    results: list[ExpectationResult] = field(default_factory=list)
    skip_reason: str | None = None
    skipped_expectations: list[str] = field(default_factory=list)
    rows: int | None = None

    @property
    def ok(self) -> bool:
        return not any(r.blocking for r in self.results)

    @property
    def status(self) -> SuiteStatus:
        if self.skip_reason is not None and not self.results:
            return "skipped"
        if not self.ok:
            return "failed"
        if any(r.failed for r in self.results):
            return "warned"
        return "passed"

    @property
    def failures(self) -> list[ExpectationResult]:
        """Failed expectations, blocking ones first."""
        failed = [r for r in self.results if r.failed]
        return sorted(failed, key=lambda r: not r.blocking)


@dataclass
class CheckReport:
    """Everything a run found. `ok` is what `make check` turns into its exit code."""

    suites: list[SuiteResult]
    docs_index: Path | None = None
    docs_error: str | None = None
    started_at: dt.datetime | None = None
    seconds: float | None = None
    backend: str | None = None

    @property
    def ok(self) -> bool:
        """True when no error-severity expectation failed and no expectation raised."""
        return all(s.ok for s in self.suites)

    def suite(self, name: str) -> SuiteResult:
        for s in self.suites:
            if s.name == name:
                return s
        raise KeyError(f"no suite {name!r} in this report; have {[s.name for s in self.suites]}")

    @property
    def failures(self) -> list[ExpectationResult]:
        """Every failed expectation (blocking or not), suite by suite."""
        return [r for s in self.suites for r in s.failures]

    def summary(self) -> str:
        """Compact text: a verdict line, then per suite passed/failed, and for each failure its
        table, expectation and a few offending ids; then where the Data Docs are."""
        counts: dict[str, int] = {}
        for s in self.suites:
            counts[s.status] = counts.get(s.status, 0) + 1
        n_exp = sum(len(s.results) for s in self.suites)
        blocking = sum(1 for s in self.suites for r in s.results if r.blocking)
        warnings = sum(1 for s in self.suites for r in s.results if r.failed and not r.blocking)
        verdict = "PASSED" if self.ok else "FAILED"
        tally = ", ".join(f"{counts[k]} {k}" for k in ("passed", "warned", "failed", "skipped") if counts.get(k))
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        on = f" on {self.backend}" if self.backend else ""
        lines = [
            f"checks {verdict}{on}: {len(self.suites)} suites ({tally}), {n_exp} expectations, "
            f"{blocking} failing, {warnings} warnings{took}"
        ]
        width = max((len(s.name) for s in self.suites), default=0)
        for s in self.suites:
            if s.status == "skipped":
                detail = f"skipped: {s.skip_reason}"
            else:
                passed = sum(1 for r in s.results if not r.failed)
                rows = f", {s.rows} rows" if s.rows is not None else ""
                detail = f"{passed}/{len(s.results)} expectations passed{rows}"
            lines.append(f"  {s.name:<{width}}  {s.status.upper():<7}  {detail}")
            for r in s.failures:
                lines.append(f"      {r.describe()}")
            for note in s.skipped_expectations:
                lines.append(f"      not checked: {note}")
        if self.docs_index is not None:
            lines.append(f"Data Docs: {self.docs_index}")
        if self.docs_error is not None:
            lines.append(f"Data Docs not written: {self.docs_error}")
        return "\n".join(lines)
