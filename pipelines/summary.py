"""The readable end of a run: per merchant and table, rows loaded, requests made, time taken and
where each cursor stands; then failures, warnings, transforms and checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .sync import MerchantResult

# which requests and which cursor belong to which table's row in the summary
_TABLE_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    # table: (endpoints, cursors, resource for timing)
    "user_info": (("/v2/user-info/",), (), "user_info"),
    "user_contact": (("/v2/user-contact/",), (), "user_contact"),
    "payouts": (("/v2/payouts/",), ("payouts",), "payouts"),
    "payments": (("/v2/payments/", "/v2/payments/?payout"), ("payments",), "payments"),
    "products": (("/v2/products/",), ("products",), "products"),
    "product_covers": (("/v2/products/{slug}/covers/",), (), ""),
    "orders": (("/v2/orders/", "/v2/orders/?pending"), ("orders",), "orders"),
    "order_payments": ((), (), ""),
    "order_items": ((), (), ""),
    "order_item_variants": ((), (), ""),
}


def _cursor_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def merchant_table(results: Iterable[MerchantResult]) -> str:
    """The per merchant × table table."""
    header = ("merchant", "table", "rows", "requests", "seconds", "cursor now at")
    rows: list[tuple[str, ...]] = []
    for r in results:
        first = True
        tables = [t for t in _TABLE_SOURCES if t in r.rows or any(e in r.requests for e in _TABLE_SOURCES[t][0])]
        tables += sorted(t for t in r.rows if t not in _TABLE_SOURCES)
        if not tables:
            rows.append((r.merchant, "-", "0", str(r.total_requests), f"{r.seconds:.1f}", "FAILED" if not r.ok else "-"))
            continue
        for table in tables:
            endpoints, cursors, resource = _TABLE_SOURCES.get(table, ((), (), ""))
            requests = sum(r.requests.get(e, 0) for e in endpoints)
            seconds = r.seconds_by_resource.get(resource)
            cursor = ", ".join(_cursor_text(r.cursors.get(c)) for c in cursors) or ""
            rows.append(
                (
                    r.merchant if first else "",
                    table,
                    f"{r.rows.get(table, 0):,}",
                    f"{requests:,}" if endpoints else "",
                    f"{seconds:.1f}" if seconds is not None else "",
                    cursor,
                )
            )
            first = False
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {2, 3, 4}

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, rows)])


def table_totals(results: Iterable[MerchantResult]) -> str:
    """Rows and requests per table over every merchant (for runs with many merchants)."""
    results = list(results)
    header = ("table", "rows", "requests", "merchants with rows")
    rows = []
    for table, (endpoints, _, _) in _TABLE_SOURCES.items():
        loaded = sum(r.rows.get(table, 0) for r in results)
        requests = sum(r.requests.get(e, 0) for r in results for e in endpoints)
        with_rows = sum(1 for r in results if r.rows.get(table))
        if loaded or requests:
            rows.append((table, f"{loaded:,}", f"{requests:,}" if endpoints else "", f"{with_rows:,}"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, rows)])


PER_MERCHANT_UP_TO = 25


def render(results: list[MerchantResult], *, seconds: float, extra: list[str] | None = None,
           detail: str = "auto", load_error: str | None = None) -> str:
    """The whole summary printed at the end of `sync`. `detail`: "merchants" (a row per merchant
    and table), "tables" (totals per table), or "auto" (per merchant up to 25 merchants)."""
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    per_merchant = detail == "merchants" or (detail == "auto" and len(results) <= PER_MERCHANT_UP_TO)
    lines = [
        f"instamojo-elt sync: {len(results)} merchant(s), {len(ok)} ok, {len(failed)} failed, "
        f"{sum(r.total_rows for r in results):,} rows, {sum(r.total_requests for r in results):,} requests, "
        f"{seconds:.1f} s",
        "",
        merchant_table(results) if per_merchant else table_totals(results),
    ]
    if load_error:
        lines += ["", f"LOAD FAILED {load_error}"]
    for r in failed:
        if r.error != load_error:
            lines += ["", f"FAILED {r.error}"]
    warnings = [(r.merchant, w) for r in results for w in r.warnings]
    if warnings:
        lines += ["", "Warnings:"] + [f"  - merchant {m!r}: {w}" for m, w in warnings]
    if extra:
        lines += [""] + extra
    return "\n".join(lines)
