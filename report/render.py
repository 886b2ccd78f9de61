"""The page: `page.html` (a Jinja2 template with its CSS inside) filled from a `Report`, with the
charts as inline SVG. Everything the page needs is in the one file; the CSV downloads sit beside it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from markupsafe import Markup

from . import charts, downloads
from . import formatting as fmt
from .model import AGE_BUCKETS, Report

SECTIONS = (
    ("summary", "Summary"),
    ("settlement-flow", "Settlement flow"),
    ("payouts", "Payouts"),
    ("daily-settlement", "Daily settlement"),
    ("unsettled", "Unsettled money"),
    ("exceptions", "Exceptions"),
    ("orders", "Orders"),
    ("downloads", "Downloads"),
)
#: rows shown per table on the page; every row is in the CSV beside it
ROW_LIMIT = 200


def _total(key: str, merchant: str, value: Any, kind: str = "money", unknown: int = 0) -> Markup:
    """A figure that stands for one SQL sum: the text a person reads, plus the exact value and
    the figure's name for machines (the tests compare each one with its SQL)."""
    if kind == "count":
        text, exact = fmt.count(value), str(int(value))
    else:
        text, exact = fmt.inr(value), fmt.plain(value)
    note = ""
    if unknown:
        note = Markup(' <span class="unknown" title="left out of the sum: not a number">+ {} unknown</span>').format(unknown)
    return Markup('<span class="num" data-total="{}" data-merchant="{}" data-value="{}">{}</span>{}').format(
        key, merchant, exact, text, note)


def _money(value: Decimal | None, signed: bool = False) -> Markup:
    if value is None:
        return Markup('<span class="num unknown" data-value="">unknown</span>')
    css = "num neg" if value < 0 else "num"
    return Markup('<span class="{}" data-value="{}">{}</span>').format(css, fmt.plain(value), fmt.inr(value, sign=signed))


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(total=_total, money=_money, inr=fmt.inr, count=fmt.count, day=fmt.day,
                       moment=fmt.moment, plural=fmt.plural, plain=fmt.plain, sections=SECTIONS,
                       row_limit=ROW_LIMIT, files=downloads.FILES, age_buckets=AGE_BUCKETS)
    env.filters["ist_day"] = lambda t: fmt.day(fmt.to_ist(t).date()) if t else "—"
    return env


def _behind(report: Report, latest: Any) -> int | None:
    """Days a merchant's newest record is behind the newest of all (stale data shows)."""
    newest = report.latest_at
    if latest is None or newest is None:
        return None
    return (fmt.to_ist(newest).date() - fmt.to_ist(latest).date()).days


def render(report: Report) -> str:
    chart_svgs: dict[tuple[str, str], Markup] = {}
    for m in report.merchants:
        if not m.has_data:
            continue
        name = m.merchant
        chart_svgs[(name, "flow")] = Markup(charts.waterfall(m.flow, f"{name}: from sales to paid out"))
        chart_svgs[(name, "daily")] = Markup(charts.daily(m.days, f"{name}: expected payouts (T+3) and paid out, per day"))
        if m.unsettled:
            chart_svgs[(name, "aging")] = Markup(charts.aging(m.buckets, f"{name}: unsettled money by age"))
        if m.exception_groups:
            chart_svgs[(name, "exceptions")] = Markup(charts.exceptions(m.exception_groups, f"{name}: exceptions by type"))
    template = _environment().get_template("page.html")
    return template.render(report=report, charts=chart_svgs, behind=lambda latest: _behind(report, latest))
