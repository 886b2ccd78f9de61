"""Payments: the one listing without a time filter.

An incremental cursor on `created_at` with a lookback re-reads recent payments (pending → paid or
failed, a payout link set). The listing stops after the first page that reaches back past
cursor − lookback, but only while the pages *prove* to be sorted newest-first (the sort order is
undocumented: each page must be in order, and continue where the previous one ended); otherwise
everything is read. A run with nothing new thus reads one page. Rows merge on (merchant, id); when one load holds a
payment twice, the latest `updated_at` wins (the table's `dedup_sort`).

Payout links set after a payment left the lookback are brought by `payouts.py` (it re-reads the
payments of each new payout); refunds weeks later by a run with a longer lookback
(`sync --lookback-days 30`).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import settings as s
from ..schema import PAYMENTS
from ..state import advance, parse_ts
from .common import MerchantContext, log, read_listing

# Records per page while the listing is expected to stop at the lookback (a run with a cursor).
INCREMENTAL_PAGE_SIZE = 100


class NewestFirstProof:
    """Watches a listing's pages in order and says whether they are, so far, sorted newest-first
    by `field` (within each page and across pages). One page out of order disproves it for good."""

    def __init__(self, field_name: str) -> None:
        self.field = field_name
        self.holds = True
        self._previous_oldest: datetime | None = None
        #: the oldest value on the page observed last (None before a page with values)
        self.page_oldest: datetime | None = None

    def observe(self, records: list[dict[str, Any]]) -> tuple[bool, datetime | None]:
        """Returns (order still proven, newest value on this page)."""
        if not records:
            return self.holds, None
        try:
            values = [parse_ts(r.get(self.field)) for r in records]
        except (TypeError, ValueError):
            self.holds = False
            return False, None
        if any(v is None for v in values):
            self.holds = False
            return False, None
        if self._previous_oldest is not None and values[0] > self._previous_oldest:  # type: ignore[operator]
            self.holds = False
        if self.holds and any(a < b for a, b in itertools.pairwise(values)):  # type: ignore[operator]
            self.holds = False
        self._previous_oldest = self.page_oldest = values[-1]
        return self.holds, values[0]


def newest(table: pa.Table, column: str) -> datetime | None:
    """The newest value of a timestamp column (None for an empty table)."""
    if table.num_rows == 0 or column not in table.column_names:
        return None
    value = pc.max(table.column(column)).as_py()
    return value if isinstance(value, datetime) else None


def sync_payments(ctx: MerchantContext, state: dict[str, Any]) -> dict[str, Any]:
    """Read the merchant's payments since cursor − lookback; returns the family's new state."""
    endpoint = s.PAYMENTS_ENDPOINT
    threshold = ctx.start_of(parse_ts(state.get("cursor")), ctx.options.payments_lookback_days)
    proof = NewestFirstProof("created_at")

    def stop(records: list[dict[str, Any]]) -> bool:
        # in order and reaching past the threshold: every later page is older still
        holds, _ = proof.observe(records)
        return holds and threshold is not None and proof.page_oldest is not None and proof.page_oldest < threshold

    seen: datetime | None = None
    # with nothing to stop at, pages need not be parsed: they go to Arrow as bytes
    rule = stop if threshold is not None else None
    # a listing that will stop early asks for smaller pages: its first page is usually its last
    size = INCREMENTAL_PAGE_SIZE if threshold is not None else None
    with ctx.notes.timer("payments"):
        for table in read_listing(ctx, "payments", endpoint, ctx.converter(PAYMENTS, endpoint.path), stop=rule,
                                  page_size=size):
            if threshold is not None:
                # older than the lookback: read before and not asked for again (what a page
                # holds beyond the window is left alone, as dlt's own incremental would)
                table = table.filter(pc.greater_equal(table.column("created_at"), pa.scalar(threshold, table.schema.field("created_at").type)))
            ctx.emit(PAYMENTS, table)
            batch_newest = newest(table, "created_at")
            if batch_newest is not None and (seen is None or batch_newest > seen):
                seen = batch_newest
    if threshold is not None and not proof.holds:
        log.info("merchant %r: payments listing is not newest-first; read it completely", ctx.merchant)
    if "payments" in ctx.notes.skipped or ctx.options.backfill_from is not None:
        return state
    return {**state, "cursor": advance(state.get("cursor"), seen)}
