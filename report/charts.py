"""The report's charts: Vega-Lite specifications built with altair, rendered to SVG by
vl-convert-python at build time and written into the page.

Why this library: altair is already installed (great-expectations brings it) and is the
maintained Python front end of Vega-Lite, a declarative grammar that draws a waterfall, grouped
and stacked bars from a small table without custom drawing code. vl-convert renders Vega-Lite in
an embedded JavaScript engine shipped inside its wheel, so the page gets finished SVG: nothing to
load or run in the browser (it opens offline, prints exactly as shown, has no script to fail),
and the same SVG scales down on a phone. The alternatives were heavier in the page: plotly or
vega-embed would inline 1–3 MB of JavaScript and draw only when scripts run.

Money reaches the charts as floats for drawing only (bar lengths); every figure printed on a
chart is a label formatted from the exact Decimal, as on the rest of the page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .formatting import inr, short_day

if TYPE_CHECKING:
    from .model import Bucket, DayRow, Flow, Group

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif"
COLORS = {
    "total": "#1f4e79",
    "subtotal": "#5b7fa6",
    "decrease": "#c0504d",
    "increase": "#4e9a5a",
    "residual": "#e39b2d",
    "expected": "#9fb9d6",
    "paid": "#1f4e79",
    "awaiting": "#9fb9d6",
    "overdue": "#c0504d",
    "high": "#c0504d",
    "medium": "#e39b2d",
    "low": "#7f8c99",
}
CONFIG: dict[str, Any] = {
    "font": FONT,
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "labelColor": "#333", "titleColor": "#333",
             "gridColor": "#e6e9ee", "domainColor": "#999", "tickColor": "#999"},
    "legend": {"labelFontSize": 12, "titleFontSize": 12, "orient": "top"},
    "background": "white",
}


def _draw(value: Decimal | None) -> float:
    """A bar's length: a float is fine here, it is never printed."""
    return float(value) if value is not None else 0.0


def to_svg(chart: Any) -> str:
    """Render an altair chart to an SVG string (no network: no data URL may be fetched)."""
    import vl_convert as vlc

    spec = chart.to_dict()
    svg = vlc.vegalite_to_svg(spec, format_locale="en-IN", allowed_base_urls=[])
    # vl-convert sets fixed width/height; the page's CSS scales the SVG to its container
    return svg.replace('<svg ', '<svg role="img" preserveAspectRatio="xMinYMin meet" ', 1)


def waterfall(flow: Flow, title: str) -> str:
    import altair as alt

    rows = []
    running = Decimal("0.00")
    for order, step in enumerate(flow.steps):
        if step.kind in ("total", "subtotal"):
            start, end = Decimal("0.00"), step.value
        else:
            start, end = running, running + step.value
        running = end
        sign = "" if step.kind in ("total", "subtotal") or not step.value else ("+ " if step.value > 0 else "− ")
        rows.append({"order": order, "label": step.label, "kind": step.kind, "start": _draw(start),
                     "end": _draw(end), "text": sign + inr(abs(step.value)) if sign else inr(step.value)})
    kinds = ["total", "decrease", "increase", "subtotal", "residual"]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("label:N", sort=alt.EncodingSortField("order"), title=None, axis=alt.Axis(labelLimit=200)),
    )
    bars = base.mark_bar(height={"band": 0.7}).encode(
        x=alt.X("start:Q", title=None, axis=alt.Axis(format="$,.0f", tickCount=5)),
        x2="end:Q",
        color=alt.Color("kind:N", scale=alt.Scale(domain=kinds, range=[COLORS[k] for k in kinds]), legend=None),
    )
    labels = base.mark_text(align="left", dx=6, fontSize=12, color="#222").encode(
        x=alt.X("label_x:Q"), text="text:N",
    ).transform_calculate(label_x="max(datum.start, datum.end)")
    chart = (bars + labels).properties(width=380, height=30 * len(rows), title=title).configure(**CONFIG)
    return to_svg(chart)


def daily(days: list[DayRow], title: str) -> str:
    import altair as alt

    rows, shade = [], []
    for d in days:
        label = short_day(d.day)
        for series, value in (("Expected (T+3)", d.expected), ("Paid out", d.paid)):
            rows.append({"day": label, "date": d.day.isoformat(), "series": series, "value": _draw(value),
                         "text": inr(value)})
        if d.is_business_day is False:
            shade.append({"day": label, "why": d.holiday_name or "weekend"})
    order = [short_day(d.day) for d in days]
    x = alt.X("day:N", sort=order, title=None, axis=alt.Axis(labelAngle=-60, labelFontSize=10))
    bars = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=x,
        xOffset=alt.XOffset("series:N", sort=["Expected (T+3)", "Paid out"]),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format="$,.0f", tickCount=5)),
        color=alt.Color("series:N", title=None, sort=["Expected (T+3)", "Paid out"],
                        scale=alt.Scale(domain=["Expected (T+3)", "Paid out", "Weekend or holiday"],
                                        range=[COLORS["expected"], COLORS["paid"], "#eef0f3"])),
    )
    layers = [bars]
    if shade:
        layers.insert(0, alt.Chart(alt.Data(values=shade)).mark_rect(color="#eef0f3").encode(
            x=alt.X("day:N", sort=order), color=alt.value("#eef0f3")))
    chart = alt.layer(*layers).properties(width=max(360, 22 * len(days)), height=220, title=title).configure(**CONFIG)
    return to_svg(chart)


def aging(buckets: list[Bucket], title: str) -> str:
    import altair as alt

    rows = []
    for b in buckets:
        for state, n, value in (("Awaiting payout", b.awaiting_count, b.awaiting_net),
                                ("Overdue", b.overdue_count, b.overdue_net)):
            rows.append({"bucket": b.label, "state": state, "value": _draw(value), "count": n})
    totals = [{"bucket": b.label, "total": _draw(b.net), "text": f"{inr(b.net)} · {b.count:,}"} for b in buckets]
    order = [b.label for b in buckets]
    top = max((_draw(b.net) for b in buckets), default=0.0) * 1.15 or 1.0
    x = alt.X("bucket:N", sort=order, title="business days since the payment",
              axis=alt.Axis(labelAngle=0, labelExpr="replace(datum.label, ' business days', '')"))
    bars = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=x,
        y=alt.Y("value:Q", stack="zero", title="net, ₹", scale=alt.Scale(domainMax=top),
                axis=alt.Axis(format="$,.0f", tickCount=5)),
        color=alt.Color("state:N", title=None, scale=alt.Scale(domain=["Awaiting payout", "Overdue"],
                                                               range=[COLORS["awaiting"], COLORS["overdue"]])),
        order=alt.Order("state:N"),
    )
    text = alt.Chart(alt.Data(values=totals)).mark_text(dy=-6, fontSize=11, color="#222").encode(
        x=alt.X("bucket:N", sort=order), y=alt.Y("total:Q"), text="text:N")
    chart = (bars + text).properties(width=400, height=220, title=title).configure(**CONFIG)
    return to_svg(chart)


def exceptions(groups: list[Group], title: str) -> str:
    import altair as alt

    rows = [{"label": g.label, "severity": g.severity, "value": _draw(g.amount),
             "text": f"{g.count:,} · " + ("amount unknown" if g.unknown == g.count else
                                          inr(g.amount) + (f" (+{g.unknown} unknown)" if g.unknown else ""))}
            for g in groups]
    order = [g.label for g in groups]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar(height={"band": 0.7}).encode(
        x=alt.X("value:Q", title="at stake", axis=alt.Axis(format="$,.0f", tickCount=4)),
        color=alt.Color("severity:N", title="Severity", scale=alt.Scale(
            domain=["high", "medium", "low"], range=[COLORS["high"], COLORS["medium"], COLORS["low"]])),
    )
    text = base.mark_text(align="left", dx=6, fontSize=12, color="#222").encode(x="value:Q", text="text:N")
    chart = (bars + text).properties(width=360, height=32 * len(rows), title=title).configure(**CONFIG)
    return to_svg(chart)
