"""Payouts, and the payments each new payout settles.

The listing is incremental on `paid_out_at` through the API's `start_time` filter, re-reading
`payouts_lookback_days` behind the cursor. A payment gets its payout link days after it was
created, usually long after it left the payments lookback; so for each payout not seen before,
its payments are re-read (`/v2/payments/?payout=<id>`), which brings every link.

A merchant's first run is the exception: its payments listing reads every payment anyway and runs
*after* this one (`merchant.py` fixes the order), so it sees every link that exists now, and the
follow-ups would read the same payments twice. They are then only noted as done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from .. import settings as s
from ..schema import PAYMENTS, PAYOUTS
from ..state import advance, iso, parse_ts, prune
from .common import Batches, MerchantContext, read_listing
from .payments import newest


def sync_payouts(ctx: MerchantContext, state: dict[str, Any], *, payments_cursor: datetime | None) -> dict[str, Any]:
    """Read the payouts since cursor − lookback and follow up new ones; returns the new state.
    `payments_cursor`: the payments family's cursor (None before its first full scan)."""
    endpoint = s.PAYOUTS_ENDPOINT
    start = ctx.start_of(parse_ts(state.get("cursor")), ctx.options.payouts_lookback_days)
    params = {"start_time": iso(start)} if start is not None else {}
    followed_up: dict[str, str] = dict(state.get("followed_up") or {})
    covered_by_first_scan = (
        "payments" in ctx.wanted and payments_cursor is None and ctx.options.backfill_from is None
    )
    follow = ctx.granted(s.PAYMENTS_ENDPOINT.scope) and not covered_by_first_scan
    followups = Batches(ctx.converter(PAYMENTS, s.PAYMENTS_ENDPOINT.path + "?payout"), ctx.options.batch_rows,
                        "payments", refetch=ctx.api.refetch(s.PAYMENTS_ENDPOINT.path + "?payout"))
    seen: datetime | None = None
    with ctx.notes.timer("payouts"):
        for table in read_listing(ctx, "payouts", endpoint, ctx.converter(PAYOUTS, endpoint.path), params):
            ctx.emit(PAYOUTS, table)
            batch_newest = newest(table, "paid_out_at")
            if batch_newest is not None and (seen is None or batch_newest > seen):
                seen = batch_newest
            _follow_up(ctx, table, followed_up, followups if follow else None)
        for batch in followups.flush():
            ctx.emit(PAYMENTS, batch)
    if "payouts" in ctx.notes.skipped:
        return state
    prune(followed_up, keep_days=ctx.options.payouts_lookback_days + 2)
    cursor = state.get("cursor") if ctx.options.backfill_from is not None else advance(state.get("cursor"), seen)
    return {**state, "cursor": cursor, "followed_up": followed_up}


def _follow_up(ctx: MerchantContext, payouts: pa.Table, followed_up: dict[str, str], batches: Batches | None) -> None:
    """Re-read the payments of each payout of `payouts` not followed up before."""
    for payout_id, paid_out in zip(payouts.column("id").to_pylist(), payouts.column("paid_out_at").to_pylist(), strict=True):
        if payout_id in followed_up:
            continue
        if batches is not None:
            for page in ctx.api.iter_pages(s.PAYMENTS_ENDPOINT.path, endpoint=s.PAYMENTS_ENDPOINT.path + "?payout",
                                           envelope_key="payments", params={"payout": payout_id}):
                for table in batches.add(page):
                    ctx.emit(PAYMENTS, table)
        followed_up[payout_id] = iso(paid_out) if paid_out else ""
