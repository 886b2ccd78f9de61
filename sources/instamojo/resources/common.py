"""What every resource family shares: the merchant's context (API client, converters, where rows
go, the run's notes) and reading a whole list endpoint as Arrow batches."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from .. import settings as s
from ..client import ApiClient, Page, StopRule
from ..convert import ArrowConverter, ConversionNotes
from ..errors import ScopeError
from ..schema import Table

log = logging.getLogger("sources.instamojo")

DAY = 86_400.0

# Where a family's rows go: (the raw table, an Arrow table of its rows).
Emit = Callable[[Table, pa.Table], None]


@dataclass
class RunNotes:
    """What the source saw of one merchant during one run, for the pipeline's summary. Never holds
    a secret."""

    merchant: str
    granted_scopes: tuple[str, ...] | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # resource → why
    errors: list[str] = field(default_factory=list)  # what failed (already redacted)
    requests_by_endpoint: Counter = field(default_factory=Counter)
    seconds_by_resource: Counter = field(default_factory=Counter)
    rows_by_table: Counter = field(default_factory=Counter)
    conversions: list[ConversionNotes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    committed: dict[str, bool] = field(default_factory=dict)  # family → its state was replaced
    seconds: float = 0.0
    finished: bool = False

    @property
    def ok(self) -> bool:
        return self.finished and not self.errors

    @contextmanager
    def timer(self, resource: str) -> Iterator[None]:
        """Adds the wall time of the block (a resource's whole listing) to `seconds_by_resource`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds_by_resource[resource] += time.perf_counter() - started

    @property
    def unknown_fields(self) -> set[str]:
        return set().union(*(c.unknown_fields for c in self.conversions)) if self.conversions else set()

    @property
    def non_numeric_money(self) -> list[tuple[object, str, str]]:
        return [item for c in self.conversions for item in c.non_numeric_money]


@dataclass(frozen=True)
class ListingOptions:
    """How far each listing looks back, and what a run was asked to do (see `instamojo_source`)."""

    payments_lookback_days: float = s.DEFAULT_PAYMENTS_LOOKBACK_DAYS
    payouts_lookback_days: float = s.DEFAULT_PAYOUTS_LOOKBACK_DAYS
    products_lookback_days: float = s.DEFAULT_PRODUCTS_LOOKBACK_DAYS
    orders_lookback_days: float = s.DEFAULT_ORDERS_LOOKBACK_DAYS
    pending_orders_window_days: float = s.DEFAULT_PENDING_ORDERS_WINDOW_DAYS
    products_full_read_hours: float = s.DEFAULT_PRODUCTS_FULL_READ_HOURS
    batch_rows: int = s.DEFAULT_BATCH_ROWS
    backfill_from: datetime | None = None  # re-read since then; cursors neither used nor moved


@dataclass
class MerchantContext:
    """One merchant's run: its API client, what it may read, where rows go and what is noted."""

    merchant: str
    api: ApiClient
    emit: Emit
    notes: RunNotes
    options: ListingOptions
    synced_at: datetime
    wanted: tuple[str, ...]  # resources to read (the user's choice, minus scopes not granted)

    def converter(self, table: Table, endpoint: str, **kw: Any) -> ArrowConverter:
        conv = ArrowConverter(table, merchant=self.merchant, endpoint=endpoint, synced_at=self.synced_at, **kw)
        self.notes.conversions.append(conv.notes)
        return conv

    def granted(self, scope: str) -> bool:
        return self.notes.granted_scopes is None or scope in self.notes.granted_scopes

    def skip_for_scope(self, resource: str, exc: ScopeError) -> None:
        self.notes.skipped[resource] = f"HTTP 403, scope {exc.scope or '?'} not granted"
        log.warning("merchant %r: skipping %s: %s", self.merchant, resource, exc)

    def start_of(self, cursor: datetime | None, lookback_days: float) -> datetime | None:
        """Where a listing starts: the backfill's instant, else cursor − lookback (None: from the
        beginning)."""
        from datetime import timedelta

        if self.options.backfill_from is not None:
            return self.options.backfill_from
        return cursor - timedelta(days=lookback_days) if cursor is not None else None


class Batches:
    """Gathers pages and converts them to one Arrow table per about `rows` records, so dlt sees
    few large items (per-item overhead dominates with one small table per page). Only the raw
    page bodies are kept until then: memory stays bounded by the batch, whatever the history."""

    def __init__(self, converter: ArrowConverter, rows: int, envelope_key: str,
                 refetch: Callable[[str], bytes] | None = None) -> None:
        self.converter = converter
        self.rows = rows
        self.envelope_key = envelope_key
        self.refetch = refetch
        self._bodies: list[bytes] = []
        self._urls: list[str] = []
        self._count = 0

    def add(self, page: Page) -> Iterator[pa.Table]:
        if page.count:
            self._bodies.append(page.body)
            self._urls.append(page.url)
            self._count += page.count
        if self._count >= self.rows:
            yield from self.flush()

    def flush(self) -> Iterator[pa.Table]:
        if self._bodies:
            bodies, urls = self._bodies, self._urls
            self._bodies, self._urls, self._count = [], [], 0
            yield self.converter.convert_pages(bodies, self.envelope_key, urls, refetch=self.refetch)


def read_listing(
    ctx: MerchantContext,
    resource: str,
    endpoint: s.Endpoint,
    conv: ArrowConverter,
    params: dict[str, Any] | None = None,
    stop: StopRule | None = None,
    page_size: int | None = None,
) -> Iterator[pa.Table]:
    """A whole list endpoint as Arrow batches. A scope the merchant did not grant (HTTP 403)
    skips the resource: `ctx.notes.skipped` says so, and nothing is yielded after it."""
    batches = Batches(conv, ctx.options.batch_rows, endpoint.envelope_key or "", refetch=ctx.api.refetch(endpoint.path))
    try:
        for page in ctx.api.iter_pages(endpoint.path, endpoint=endpoint.path, envelope_key=endpoint.envelope_key or "",
                                       params=params, stop=stop, page_size=page_size):
            yield from batches.add(page)
    except ScopeError as exc:
        ctx.skip_for_scope(resource, exc)
        return
    yield from batches.flush()
