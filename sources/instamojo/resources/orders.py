"""Orders, their nested payments, items and item variants, and the watch on pending orders.

The listing is incremental on `created_at` through `created_after`, re-reading
`orders_lookback_days` behind the cursor. Each order's nested lists land in child tables
(`order_payments`, `order_items`, `order_item_variants`) whose rows are replaced per order (merge
key merchant + order_id), so an order's lists always match the API's latest.

An order created long ago can become paid later, which neither the cursor nor `pending=1` can
see: `pending=1` lists only orders that are *still* pending. So the state keeps the orders seen
pending (within `pending_orders_window_days` of the newest order); each run lists the pending
ones of the window (usually one page) and loads those that changed since last seen (a
fingerprint of each record is kept), and every watched order missing from that list has changed
and is re-read by its exact creation time (the API has no id filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import settings as s
from ..convert import ArrowConverter
from ..errors import ScopeError
from ..schema import ORDER_ITEM_VARIANTS, ORDER_ITEMS, ORDER_PAYMENTS, ORDERS, Table
from ..state import advance, fingerprint_of, iso, parse_ts
from .common import MerchantContext, read_listing
from .payments import newest


class OrderTables:
    """Orders → Arrow tables for `orders` and its child tables (nested payments, items and item
    variants), each with its own keys."""

    def __init__(self, ctx: MerchantContext) -> None:
        endpoint = s.ORDERS_ENDPOINT.path
        self.variants = ctx.converter(ORDER_ITEM_VARIANTS, endpoint, id_field="order_id",
                                      derived=("order_id", "item_index", "variant_index"))
        self.items = ctx.converter(ORDER_ITEMS, endpoint, id_field="order_id", derived=("order_id", "item_index"),
                                   nested={"variants": pa.list_(pa.struct(list(self.variants.record_schema)))})
        self.payments = ctx.converter(ORDER_PAYMENTS, endpoint, id_field="order_id", derived=("order_id",))
        self.orders: ArrowConverter = ctx.converter(ORDERS, endpoint, nested={
            "payments": pa.list_(pa.struct(list(self.payments.record_schema))),
            "items": pa.list_(pa.struct(list(self.items.record_schema))),
        })

    def split(self, orders: pa.Table) -> Iterator[tuple[Table, pa.Table]]:
        """The four tables of a batch of converted orders (nested lists still inside)."""
        if orders.num_rows == 0:
            return
        ids = orders.column("id")
        yield ORDERS, orders.drop_columns(["payments", "items"])
        payments, _, _ = _explode(orders.column("payments"), ids)
        if payments is not None:
            yield ORDER_PAYMENTS, self.payments.typed(payments)
        items, item_order, item_index = _explode(orders.column("items"), ids)
        if items is not None:
            items_typed = self.items.typed(items.append_column("item_index", item_index))
            yield ORDER_ITEMS, items_typed.drop_columns(["variants"])
            variants, _, v_item = _explode(items_typed.column("variants"), item_order, item_index)
            if variants is not None:
                yield ORDER_ITEM_VARIANTS, self.variants.typed(variants.append_column("item_index", v_item))


def sync_orders(ctx: MerchantContext, state: dict[str, Any]) -> dict[str, Any]:
    """Read the orders since cursor − lookback, then the pending-order watch; returns the new state."""
    endpoint = s.ORDERS_ENDPOINT
    start = ctx.start_of(parse_ts(state.get("cursor")), ctx.options.orders_lookback_days)
    params = {"created_after": iso(start)} if start is not None else {}
    tables = OrderTables(ctx)
    seen: datetime | None = None
    with ctx.notes.timer("orders"):
        for batch in read_listing(ctx, "orders", endpoint, tables.orders, params):
            batch_newest = newest(batch, "created_at")
            if batch_newest is not None and (seen is None or batch_newest > seen):
                seen = batch_newest
            for table, rows in tables.split(batch):
                ctx.emit(table, rows)
        if "orders" in ctx.notes.skipped:
            return state
        if ctx.options.backfill_from is not None:
            return state  # a backfill re-reads every order anyway; cursor and watch untouched
        cursor = advance(state.get("cursor"), seen)
        fingerprints = dict(state.get("pending_seen") or {})
        watch = _watch_pending(ctx, tables, dict(state.get("watch") or {}), parse_ts(cursor), fingerprints)
    if watch is None:  # the scope went away mid-run
        return state
    return {**state, "cursor": cursor, "watch": watch, "pending_seen": fingerprints}


def _watch_pending(ctx: MerchantContext, tables: OrderTables, watch: dict[str, str],
                   newest_order: datetime | None, seen: dict[str, str]) -> dict[str, str] | None:
    """Merge the pending orders of the window that changed since last seen, and re-read watched
    ones that stopped being pending; returns the new watch list (None when the orders scope was
    refused). `seen`: order id → fingerprint of its record when last loaded from this listing
    (updated in place), so a pending order that did not change is not loaded again every run."""
    endpoint = s.ORDERS_ENDPOINT
    since = newest_order - timedelta(days=ctx.options.pending_orders_window_days) if newest_order else None
    still_pending: dict[str, str] = {}
    changed: list[dict[str, Any]] = []
    try:
        params = {"pending": "1", **({"created_after": iso(since)} if since else {})}
        for page in ctx.api.iter_pages(endpoint.path, endpoint=endpoint.path + "?pending",
                                       envelope_key="orders", params=params, parse_all=True):
            for record in page.records or []:
                order_id = record.get("id")
                still_pending[order_id] = str(record.get("created_at"))
                fingerprint = fingerprint_of(record)
                if seen.get(order_id) != fingerprint:
                    seen[order_id] = fingerprint
                    changed.append(record)
        for order_id, created in watch.items():
            if order_id in still_pending:
                continue
            moment = parse_ts(created)
            assert moment is not None
            around = {"created_after": iso(moment - timedelta(milliseconds=1)),
                      "created_before": iso(moment + timedelta(milliseconds=1))}
            for page in ctx.api.iter_pages(endpoint.path, endpoint=endpoint.path + "?pending",
                                           envelope_key="orders", params=around, parse_all=True):
                changed += [r for r in page.records or [] if r.get("id") == order_id]
    except ScopeError as exc:
        ctx.skip_for_scope("orders", exc)
        return None
    if changed:  # converted together: a conversion costs about as much for one order as for many
        for table, rows in tables.split(tables.orders.convert(changed)):
            ctx.emit(table, rows)
    horizon = iso(since) if since else ""
    kept = {k: v for k, v in still_pending.items() if iso(parse_ts(v)) >= horizon}  # type: ignore[arg-type]
    for order_id in [k for k in seen if k not in kept]:
        del seen[order_id]
    return kept


def _explode(lists: pa.ChunkedArray | pa.Array, parent_ids: Any, parent_index: Any = None) -> tuple[pa.Table | None, Any, Any]:
    """Rows of a list<struct> column as a table with the parent's id (`order_id`) and each row's
    position in its list; returns (table, parent id per row, position per row)."""
    arr = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(arr)
    if len(flat) == 0:
        return None, None, None
    parents = pc.list_parent_indices(arr).to_numpy()
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy()
    starts = np.cumsum(lengths) - lengths
    position = pa.array(np.arange(len(flat)) - starts[parents], pa.int64())
    owner = pc.take(parent_ids, pa.array(parents))
    table = pa.Table.from_struct_array(flat).append_column("order_id", owner)
    if parent_index is not None:  # variants: also the item they belong to
        return table.append_column("variant_index", position), owner, pc.take(parent_index, pa.array(parents))
    return table, owner, position
