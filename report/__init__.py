"""The reconciliation report: one self-contained HTML page (with CSV downloads beside it) that a
merchant's accountant opens instead of writing SQL. It reads only the marts and the settlement
calendar (`report.marts`), computes every figure as an exact Decimal (`report.model`), draws the
charts as inline SVG (`report.charts`) and writes the page (`report.render`, `report.downloads`).

    from report import Marts, write_report
    result = write_report(Marts(warehouse, "instamojo"), Path("data/report/index.html"))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from .marts import Marts, ReportError
from .model import Report, build_report

__all__ = ["Marts", "Report", "ReportError", "ReportResult", "build_report", "write_report"]


@dataclass(frozen=True)
class ReportResult:
    path: Path  # the HTML page
    downloads: list[Path]  # the CSV files beside it
    report: Report
    seconds: float

    def summary(self) -> str:
        r = self.report
        if r.empty:
            return f"The marts hold no merchant yet: wrote an empty report to {self.path} (run `make sync` first)."
        merchants = ", ".join(m.merchant for m in r.merchants)
        exceptions = sum(m.exceptions_count for m in r.merchants)
        return (f"Report for {merchants}, {r.period.start.isoformat()} to {r.period.end.isoformat()} "
                f"({exceptions} exception{'s' if exceptions != 1 else ''}): {self.path}  "
                f"[{len(self.downloads)} CSV files beside it; {self.seconds:.1f} s]")


def write_report(marts: Marts, output: Path, *, merchants: list[str] | None = None, start: date | None = None,
                 end: date | None = None, source: str = "", now: datetime | None = None) -> ReportResult:
    """Build the report from `marts` and write it to `output` (an .html file; the CSVs go beside it)."""
    from . import downloads
    from .render import render

    started = time.perf_counter()
    report = build_report(marts, merchants=merchants, start=start, end=end, source=source, now=now)
    html = render(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = downloads.write(report, output.parent) if not report.empty else []
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(output)
    return ReportResult(output, written, report, time.perf_counter() - started)
