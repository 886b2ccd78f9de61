"""Products, and each product's cover images.

The listing is incremental on `created_at` through the API's `created_after` filter, re-reading
`products_lookback_days` behind the cursor. A product changes long after it was created (a price,
archived or out of stock), which no creation cursor sees, so the whole catalogue is read again
once every `products_full_read_hours` (a catalogue is small: usually one page). Covers have their
own endpoint per product (`/v2/products/<slug>/covers/`); they are read once per product, when it
is first seen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from .. import settings as s
from ..schema import PRODUCT_COVERS, PRODUCTS
from ..state import advance, iso, parse_ts
from .common import MerchantContext, read_listing
from .payments import newest


def sync_products(ctx: MerchantContext, state: dict[str, Any]) -> dict[str, Any]:
    """Read the products since cursor − lookback and the covers of new ones; returns the new state."""
    endpoint = s.PRODUCTS_ENDPOINT
    start = ctx.start_of(parse_ts(state.get("cursor")), ctx.options.products_lookback_days)
    last_full = parse_ts(state.get("full_read_at"))
    full_read = start is None or last_full is None or (
        ctx.synced_at - last_full >= timedelta(hours=ctx.options.products_full_read_hours))
    params = {"created_after": iso(start)} if start is not None and not full_read else {}
    covers_read: dict[str, str] = dict(state.get("covers_read") or {})
    seen: datetime | None = None
    listed: set[str] = set()
    with ctx.notes.timer("products"):
        conv = ctx.converter(PRODUCTS, endpoint.path, id_field="slug")
        for table in read_listing(ctx, "products", endpoint, conv, params):
            ctx.emit(PRODUCTS, table)
            listed.update(table.column("slug").to_pylist())
            batch_newest = newest(table, "created_at")
            if batch_newest is not None and (seen is None or batch_newest > seen):
                seen = batch_newest
            _read_covers(ctx, table, covers_read)
    if "products" in ctx.notes.skipped:
        return state
    cursor = state.get("cursor") if ctx.options.backfill_from is not None else advance(state.get("cursor"), seen)
    new_state = {**state, "cursor": cursor, "covers_read": covers_read}
    if full_read:
        # the catalogue as it is now: products gone from it need no memory of their covers
        new_state["covers_read"] = {slug: v for slug, v in covers_read.items() if slug in listed}
        new_state["full_read_at"] = iso(ctx.synced_at)
    return new_state


def _read_covers(ctx: MerchantContext, products: pa.Table, covers_read: dict[str, str]) -> None:
    path = s.COVERS_ENDPOINT.path
    conv = ctx.converter(PRODUCT_COVERS, path, derived=("product_slug",))
    for slug, created in zip(products.column("slug").to_pylist(), products.column("created_at").to_pylist(), strict=True):
        if slug in covers_read:
            continue
        for page in ctx.api.iter_pages(path.format(slug=slug), endpoint=path, envelope_key="covers", parse_all=True):
            if page.records:
                raw = conv.raw_from_dicts(page.records)
                raw = raw.append_column("product_slug", pa.array([slug] * raw.num_rows))
                ctx.emit(PRODUCT_COVERS, conv.typed(raw, json_as_text=True))
        covers_read[slug] = iso(created) if created else ""
