"""The dlt source: one merchant's Instamojo data, one incremental resource per endpoint.

How each endpoint stays complete and current (the API's list endpoints only know creation time,
while payments and orders change after they are created):

- payments: no time filter exists. An incremental cursor on `created_at` with a lookback
  (`lag`) re-reads recent payments (pending → paid/failed). The listing stops early once a whole
  page lies before cursor − lookback, but only while the pages *prove* to be sorted newest-first
  (the sort order is undocumented); otherwise everything is read. Merge on id; when one load holds
  a payment twice, the latest `updated_at` wins.
- payouts: incremental on `paid_out_at` through `start_time`, with a lookback. For each payout not
  seen before, its payments are re-read (`/v2/payments/?payout=<id>`), so a payment paid out after
  it left the payments lookback still gets its payout link.
- products: incremental on `created_at` through `created_after`; covers read once per product.
- orders: incremental on `created_at` through `created_after`, plus every run re-reads the
  pending orders (`pending=1`) of the last `pending_orders_window_days`, so an order that becomes
  paid is updated; nested payments, items and variants land in child tables replaced per order.
- user_info, user_contact: one row per merchant, merged.

State (cursors, which payouts/products were followed up) is dlt's, committed with the load
package: if extraction fails, nothing of the run is committed and no cursor moves.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional, Sequence

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource
from dlt.sources.helpers.requests import Client

from . import settings as s
from .auth import ClientCredentials, MerchantAuth
from .client import ApiClient, Page
from .convert import ArrowConverter, ConversionNotes
from .errors import AuthError, ScopeError, register_secret
from .schema import (
    ORDER_ITEM_VARIANTS,
    ORDER_ITEMS,
    ORDER_PAYMENTS,
    ORDERS,
    PAYMENTS,
    PAYOUTS,
    PRODUCT_COVERS,
    PRODUCTS,
    Table,
)
from .token_store import DEFAULT_TOKEN_STORE, TokenStore, choose_refresh_token

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass
class RunNotes:
    """What the source saw during one run, for the pipeline's summary. Never holds a secret."""

    merchant: str
    granted_scopes: tuple[str, ...] | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # resource → why
    requests_by_endpoint: Counter = field(default_factory=Counter)
    seconds_by_resource: Counter = field(default_factory=Counter)
    conversions: list[ConversionNotes] = field(default_factory=list)

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


# delete-insert: the one merge strategy that both de-duplicates a load (latest `updated_at` wins,
# via the `dedup_sort` hint) and replaces child rows per merge key
MERGE = {"disposition": "merge", "strategy": "delete-insert"}


def table_hints(table: Table) -> dict[str, Any]:
    """dlt hints for `table`: merge on its keys, typed columns."""
    hints: dict[str, Any] = {
        "write_disposition": MERGE,
        "primary_key": list(table.primary_key),
        "columns": table.dlt_columns(),
    }
    if table.merge_key:
        hints["merge_key"] = list(table.merge_key)
    return hints


def _iso(value: datetime) -> str:
    """UTC ISO-8601 with microseconds and `Z`, like the API's own timestamps (one fixed format,
    so these strings also compare correctly as text)."""
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class NewestFirstProof:
    """Watches a listing's pages in order and says whether they are, so far, sorted newest-first
    by `field` (within each page and across pages). One page out of order disproves it for good."""

    def __init__(self, field_name: str) -> None:
        self.field = field_name
        self.holds = True
        self._previous_oldest: datetime | None = None

    def observe(self, records: list[dict[str, Any]]) -> tuple[bool, datetime | None]:
        """Returns (order still proven, newest value on this page)."""
        if not records:
            return self.holds, None
        try:
            values = [_parse_ts(r.get(self.field)) for r in records]
        except (TypeError, ValueError):
            self.holds = False
            return False, None
        if any(v is None for v in values):
            self.holds = False
            return False, None
        if self._previous_oldest is not None and values[0] > self._previous_oldest:
            self.holds = False
        if self.holds and any(a < b for a, b in zip(values, values[1:])):
            self.holds = False
        self._previous_oldest = values[-1]
        return self.holds, values[0]


class Batches:
    """Gathers pages and converts them to one Arrow table per about `rows` records, so dlt sees
    few large items (per-item overhead dominates with one small table per page). Only the raw
    page bodies are kept until then: memory stays bounded by the batch, whatever the history."""

    def __init__(self, converter: ArrowConverter, rows: int, envelope_key: str) -> None:
        self.converter = converter
        self.rows = rows
        self.envelope_key = envelope_key
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
            yield self.converter.convert_pages(bodies, self.envelope_key, urls)


@dlt.source(name="instamojo", section="instamojo", max_table_nesting=0)
def instamojo_source(
    merchant: str = dlt.config.value,
    base_url: str = dlt.config.value,
    client_id: str = dlt.secrets.value,
    client_secret: TSecretStrValue = dlt.secrets.value,
    refresh_token: Optional[TSecretStrValue] = None,
    token_store_path: str = str(DEFAULT_TOKEN_STORE),
    resources: Optional[Sequence[str]] = None,
    backfill_from: Optional[datetime] = None,
    payments_lookback_days: float = s.DEFAULT_PAYMENTS_LOOKBACK_DAYS,
    payouts_lookback_days: float = s.DEFAULT_PAYOUTS_LOOKBACK_DAYS,
    products_lookback_days: float = s.DEFAULT_PRODUCTS_LOOKBACK_DAYS,
    orders_lookback_days: float = s.DEFAULT_ORDERS_LOOKBACK_DAYS,
    pending_orders_window_days: float = s.DEFAULT_PENDING_ORDERS_WINDOW_DAYS,
    page_concurrency: int = s.DEFAULT_PAGE_CONCURRENCY,
    max_requests_per_second: Optional[float] = None,
    batch_rows: int = s.DEFAULT_BATCH_ROWS,
    notes: Optional[Any] = None,
) -> Sequence[DltResource]:
    """Instamojo data of one merchant who authorized this app.

    Args:
        merchant: The merchant's name in this project's configuration; every row carries it.
        base_url: The API's base URL (the sandbox's for the demo and tests).
        client_id: The app's OAuth client id.
        client_secret: The app's OAuth client secret.
        refresh_token: The merchant's refresh token, if configured (secrets.toml or environment);
            otherwise the token store's. A rotated token is always written to the token store.
        token_store_path: The JSON file (mode 0600) holding refresh tokens between runs.
        resources: Which of user_info, user_contact, payouts, products, orders, payments to read
            (default: all the merchant granted). A resource whose scope was not granted is skipped
            with a warning in `notes.skipped`.
        backfill_from: Re-read everything created (or paid out) since this instant. A backfill
            neither reads nor moves the incremental cursors.
        payments_lookback_days: How far behind its cursor the payments listing re-reads.
        payouts_lookback_days: How far behind its cursor the payouts listing re-reads.
        products_lookback_days: How far behind its cursor the products listing re-reads.
        orders_lookback_days: How far behind its cursor the orders listing re-reads.
        pending_orders_window_days: Pending orders created this long before the newest order are
            re-read every run.
        page_concurrency: Pages of one listing fetched in parallel once the count is known.
        max_requests_per_second: Optional client-side rate limit for this merchant.
        batch_rows: Records per Arrow table handed to dlt.
        notes: Optional `RunNotes` to fill with what the run saw (requests, skipped resources,
            unknown fields, non-numeric amounts).

    Raises:
        AuthError: at once, when the merchant has no refresh token or the token endpoint refuses
            it (revoked, expired, wrong client secret); the message says how to fix it.
    """
    run = notes if isinstance(notes, RunNotes) else RunNotes(merchant)
    wanted = list(resources or s.ALL_RESOURCES)
    unknown = [r for r in wanted if r not in s.RESOURCE_SCOPES]
    if unknown:
        raise ValueError(f"unknown resources {unknown}; choose from {', '.join(s.ALL_RESOURCES)}")
    register_secret(client_secret)
    register_secret(refresh_token)
    store = TokenStore(token_store_path)
    chosen = choose_refresh_token(merchant, refresh_token, store)
    if chosen is None:
        raise AuthError(
            f"no refresh token: authorize the merchant with `make authorize MERCHANT={merchant}` "
            f"(stores it in {store.path}), or set sources.instamojo.refresh_tokens.{merchant} in "
            ".dlt/secrets.toml. To try everything against the local sandbox, run `make demo`.",
            merchant=merchant,
        )
    token, config_fingerprint = chosen

    api_http = Client()  # dlt's retrying client: 429 (Retry-After), 5xx, dropped connections, timeouts
    api_http.configure()  # [runtime] request_timeout / request_max_attempts / request_backoff_factor …
    token_http = Client(raise_for_status=False)
    token_http.configure()
    auth = MerchantAuth(
        merchant=merchant,
        base_url=base_url,
        credentials=ClientCredentials(client_id, client_secret),
        refresh_token=token,
        token_store=store,
        session_factory=lambda: token_http.session,
        config_fingerprint=config_fingerprint,
    )
    auth.access_token()  # fail fast, before any resource runs, when the token is refused
    stored = store.get(merchant)
    run.granted_scopes = auth.granted_scopes or (stored.scopes if stored and stored.scopes else None)

    api = ApiClient(
        merchant=merchant,
        base_url=base_url,
        auth=auth,
        http=api_http,
        page_concurrency=page_concurrency,
        max_requests_per_second=max_requests_per_second,
    )
    run.requests_by_endpoint = api.requests_by_endpoint
    synced_at = datetime.now(timezone.utc)

    for name in wanted:
        scope = s.RESOURCE_SCOPES[name]
        if run.granted_scopes is not None and scope not in run.granted_scopes:
            run.skipped[name] = f"scope {scope} not granted"
            log.warning("merchant %r: skipping %s, the merchant did not grant scope %s", merchant, name, scope)
    wanted = [r for r in wanted if r not in run.skipped]

    def converter(table: Table, endpoint: str, **kw: Any) -> ArrowConverter:
        conv = ArrowConverter(table, merchant=merchant, endpoint=endpoint, synced_at=synced_at, **kw)
        run.conversions.append(conv.notes)
        return conv

    def scope_guard(resource: str, exc: ScopeError) -> None:
        run.skipped[resource] = f"HTTP 403, scope {exc.scope or '?'} not granted"
        log.warning("merchant %r: skipping %s: %s", merchant, resource, exc)

    def read_listing(
        resource: str, endpoint: s.Endpoint, conv: ArrowConverter, params: dict[str, Any] | None = None,
        stop: Any = None,
    ) -> Iterator[pa.Table]:
        """A whole list endpoint as Arrow batches; a scope the merchant did not grant skips it."""
        batches = Batches(conv, batch_rows, endpoint.envelope_key)
        try:
            for page in api.iter_pages(endpoint.path, endpoint=endpoint.path, envelope_key=endpoint.envelope_key,
                                       params=params, stop=stop):
                yield from batches.add(page)
        except ScopeError as exc:
            scope_guard(resource, exc)
            return
        yield from batches.flush()

    backfill_end = datetime.now(timezone.utc) + timedelta(days=3650) if backfill_from else None

    def cursor(path: str, lookback_days: float) -> dlt.sources.incremental:
        # A backfill is a bounded range (initial_value..end_value), which dlt runs without
        # reading or writing the cursor state.
        # primary_key=(): no boundary de-duplication by the cursor (hashing every batch): the
        # merge on primary keys already keeps one row per key.
        return dlt.sources.incremental(
            path, initial_value=backfill_from, end_value=backfill_end, lag=lookback_days * DAY, primary_key=()
        )

    # Shared between the payments listing and the payouts follow-up (see payout_payments).
    payments_scan = {"started": False}
    payments_granted = run.granted_scopes is None or s.PAYMENTS_ENDPOINT.scope in run.granted_scopes

    # -- single objects ----------------------------------------------------------------------------

    def single_object(endpoint: s.Endpoint, name: str) -> DltResource:
        def read() -> Iterator[pa.Table]:
            with run.timer(name):
                try:
                    doc = api.get_json(api.url(endpoint.path), endpoint=endpoint.path)
                except ScopeError as exc:
                    scope_guard(name, exc)
                    return
                yield converter(endpoint.table, endpoint.path, id_field="username").convert([doc])

        return dlt.resource(read, name=name, **table_hints(endpoint.table))()

    # -- payments ----------------------------------------------------------------------------------

    def payments(created_at: dlt.sources.incremental = cursor("created_at", payments_lookback_days)) -> Iterator[pa.Table]:
        with run.timer("payments"):
            endpoint = s.PAYMENTS_ENDPOINT
            threshold = created_at.start_value  # cursor − lookback; None on a first run
            payments_scan["started"] = True
            proof = NewestFirstProof("created_at")

            def stop(records: list[dict[str, Any]]) -> bool:
                holds, newest = proof.observe(records)
                return holds and threshold is not None and newest is not None and newest < threshold

            # with no cursor yet nothing can stop the listing early: pages need not be parsed
            rule = stop if threshold is not None else None
            yield from read_listing("payments", endpoint, converter(PAYMENTS, endpoint.path), stop=rule)
            if threshold is not None and not proof.holds:
                log.info("merchant %r: payments listing is not newest-first; read it completely", merchant)

    # -- payouts and the payments they settle ------------------------------------------------------

    def payouts(paid_out_at: dlt.sources.incremental = cursor("paid_out_at", payouts_lookback_days)) -> Iterator[pa.Table]:
        with run.timer("payouts"):
            endpoint = s.PAYOUTS_ENDPOINT
            params = {}
            if paid_out_at.start_value is not None:
                params["start_time"] = _iso(paid_out_at.start_value)
            yield from read_listing("payouts", endpoint, converter(PAYOUTS, endpoint.path), params)

    def payout_payments(payout_batch: pa.Table) -> Iterator[pa.Table]:
        """Re-read the payments of each payout not followed up before."""
        with run.timer("payouts"):
            state = dlt.current.resource_state().setdefault("followed_up", {})
            ids = payout_batch.column("id").to_pylist()
            times = payout_batch.column("paid_out_at").to_pylist()
            # A first run's payments listing reads every payment; if it has not started yet it will
            # see every payout link that exists now, so reading the payments of the payouts listed
            # so far would read them twice (the pipeline runs payouts before payments).
            covered_by_scan = (
                "payments" in wanted
                and not payments_scan["started"]
                and backfill_from is None
                and _cursor_value("payments", "created_at") is None
            )
            batches = Batches(converter(PAYMENTS, s.PAYMENTS_ENDPOINT.path + "?payout"), batch_rows, "payments")
            for payout_id, paid_out in zip(ids, times):
                if payout_id in state:
                    continue
                if payments_granted and not covered_by_scan:
                    for page in api.iter_pages(
                        s.PAYMENTS_ENDPOINT.path,
                        endpoint=s.PAYMENTS_ENDPOINT.path + "?payout",
                        envelope_key="payments",
                        params={"payout": payout_id},
                    ):
                        yield from batches.add(page)
                state[payout_id] = _iso(paid_out) if paid_out else ""
            yield from batches.flush()
            _prune(state, keep_days=payouts_lookback_days + 2)

    # -- products and their covers -----------------------------------------------------------------

    def products(created_at: dlt.sources.incremental = cursor("created_at", products_lookback_days)) -> Iterator[pa.Table]:
        with run.timer("products"):
            endpoint = s.PRODUCTS_ENDPOINT
            params = {"created_after": _iso(created_at.start_value)} if created_at.start_value else {}
            yield from read_listing("products", endpoint, converter(PRODUCTS, endpoint.path, id_field="slug"), params)

    def product_covers(product_batch: pa.Table) -> Iterator[pa.Table]:
        """Read the covers of each product not seen before."""
        with run.timer("products"):
            state = dlt.current.resource_state().setdefault("covers_read", {})
            endpoint = s.COVERS_ENDPOINT.path
            conv = converter(PRODUCT_COVERS, endpoint, derived=("product_slug",))
            slugs = product_batch.column("slug").to_pylist()
            created_at = product_batch.column("created_at").to_pylist()
            for slug, created in zip(slugs, created_at):
                if slug in state:
                    continue
                for page in api.iter_pages(endpoint.format(slug=slug), endpoint=endpoint, envelope_key="covers",
                                           parse_all=True):
                    if page.records:
                        raw = conv.raw_from_dicts(page.records)
                        raw = raw.append_column("product_slug", pa.array([slug] * raw.num_rows))
                        yield conv.typed(raw, json_as_text=True)
                state[slug] = _iso(created) if created else ""
            _prune(state, keep_days=products_lookback_days + 2)

    # -- orders and their nested payments, items and variants --------------------------------------

    order_tables = OrderTables(converter)

    def orders_listing(created_at: dlt.sources.incremental = cursor("created_at", orders_lookback_days)) -> Iterator[pa.Table]:
        """Orders as Arrow, their nested lists still inside (the incremental filters whole orders)."""
        with run.timer("orders"):
            endpoint = s.ORDERS_ENDPOINT
            params = {"created_after": _iso(created_at.start_value)} if created_at.start_value else {}
            yield from read_listing("orders", endpoint, order_tables.orders, params)

    def orders(batch: pa.Table) -> Iterator[Any]:
        with run.timer("orders"):
            yield from order_tables.split(batch)

    def pending_orders() -> Iterator[Any]:
        """Catch orders that stop being pending (paid later), which neither the created_at cursor
        nor `pending=1` can see: `pending=1` lists only orders that are *still* pending.

        State keeps the orders seen pending last run (within the window). Each run lists the
        pending ones of the window (`pending=1`, usually one page) and merges them; every watched
        order missing from that list has changed, and is re-read by its exact creation time
        (`created_after`/`created_before` around it: the API has no id filter)."""
        with run.timer("orders"):
            if backfill_from is not None:
                return  # a backfill re-reads every order anyway
            watch: dict[str, str] = dlt.current.resource_state().setdefault("watch", {})
            newest = _cursor_value("orders_listing", "created_at")
            since = _parse_ts(newest) - timedelta(days=pending_orders_window_days) if newest else None
            endpoint = s.ORDERS_ENDPOINT
            still_pending: dict[str, str] = {}
            try:
                params = {"pending": "1", **({"created_after": _iso(since)} if since else {})}
                batches = Batches(order_tables.orders, batch_rows, "orders")
                for page in api.iter_pages(endpoint.path, endpoint=endpoint.path + "?pending",
                                           envelope_key="orders", params=params, parse_all=True):
                    still_pending.update((r.get("id"), str(r.get("created_at"))) for r in page.records)
                    for table in batches.add(page):
                        yield from order_tables.split(table)
                for table in batches.flush():
                    yield from order_tables.split(table)
                for order_id, created in list(watch.items()):
                    if order_id in still_pending:
                        continue
                    moment = _parse_ts(created)
                    around = {"created_after": _iso(moment - timedelta(milliseconds=1)),
                              "created_before": _iso(moment + timedelta(milliseconds=1))}
                    for page in api.iter_pages(endpoint.path, endpoint=endpoint.path + "?pending",
                                               envelope_key="orders", params=around, parse_all=True):
                        changed = [r for r in page.records if r.get("id") == order_id]
                        if changed:
                            yield from order_tables.split(order_tables.orders.convert(changed))
            except ScopeError as exc:
                scope_guard("orders", exc)
                return
            watch.clear()
            horizon = _iso(since) if since else ""
            watch.update({k: v for k, v in still_pending.items() if _iso(_parse_ts(v)) >= horizon})

    # -- assembling --------------------------------------------------------------------------------

    built: list[DltResource] = []
    # Order matters with dlt's fifo extraction (set by the pipeline): payouts before payments, so
    # a first run's full payments scan already sees every payout link (see payout_payments).
    for name in s.ALL_RESOURCES:
        if name not in wanted:
            continue
        if name == "user_info":
            built.append(single_object(s.USER_INFO_ENDPOINT, "user_info"))
        elif name == "user_contact":
            built.append(single_object(s.USER_CONTACT_ENDPOINT, "user_contact"))
        elif name == "payouts":
            payouts_res = dlt.resource(payouts, name="payouts", **table_hints(PAYOUTS))
            built.append(payouts_res)
            built.append(
                dlt.transformer(payout_payments, data_from=payouts_res, name="payout_payments",
                                table_name="payments", **table_hints(PAYMENTS))
            )
        elif name == "products":
            products_res = dlt.resource(products, name="products", **table_hints(PRODUCTS))
            built.append(products_res)
            built.append(
                dlt.transformer(product_covers, data_from=products_res, name="product_covers",
                                **table_hints(PRODUCT_COVERS))
            )
        elif name == "orders":
            listing = dlt.resource(orders_listing, name="orders_listing", selected=False)
            built.append(listing)
            # no table hints on these two: each item carries its table's hints (see OrderTables)
            built.append(dlt.transformer(orders, data_from=listing, name="orders"))
            built.append(dlt.resource(pending_orders, name="pending_orders"))
        elif name == "payments":
            built.append(dlt.resource(payments, name="payments", **table_hints(PAYMENTS)))
    return built


class OrderTables:
    """Orders → Arrow tables for `orders` and its child tables (nested payments, items, and item
    variants), each sent to its table with its own keys. Child rows are replaced per order (merge
    key merchant + order_id), so an order's lists always match the API's latest."""

    def __init__(self, converter: Any) -> None:
        endpoint = s.ORDERS_ENDPOINT.path
        self.variants = converter(ORDER_ITEM_VARIANTS, endpoint, id_field="order_id",
                                  derived=("order_id", "item_index", "variant_index"))
        self.items = converter(ORDER_ITEMS, endpoint, id_field="order_id", derived=("order_id", "item_index"),
                               nested={"variants": pa.list_(pa.struct(list(self.variants.record_schema)))})
        self.payments = converter(ORDER_PAYMENTS, endpoint, id_field="order_id", derived=("order_id",))
        self.orders = converter(ORDERS, endpoint, nested={
            "payments": pa.list_(pa.struct(list(self.payments.record_schema))),
            "items": pa.list_(pa.struct(list(self.items.record_schema))),
        })
        self.hints = {
            t.name: dlt.mark.make_hints(table_name=t.name, **table_hints(t))
            for t in (ORDERS, ORDER_PAYMENTS, ORDER_ITEMS, ORDER_ITEM_VARIANTS)
        }

    def split(self, orders: pa.Table) -> Iterator[Any]:
        """The four tables of a batch of converted orders (nested lists still inside)."""
        if orders.num_rows == 0:
            return
        ids = orders.column("id")
        payments, _, _ = _explode(orders.column("payments"), ids)
        items, item_order, item_index = _explode(orders.column("items"), ids)
        tables: list[tuple[Table, pa.Table]] = [(ORDERS, orders.drop_columns(["payments", "items"]))]
        if payments is not None:
            tables.append((ORDER_PAYMENTS, self.payments.typed(payments)))
        if items is not None:
            items_typed = self.items.typed(items.append_column("item_index", item_index))
            variants, v_order, v_item = _explode(items_typed.column("variants"), item_order, item_index)
            tables.append((ORDER_ITEMS, items_typed.drop_columns(["variants"])))
            if variants is not None:
                variants = variants.append_column("item_index", v_item)
                tables.append((ORDER_ITEM_VARIANTS, self.variants.typed(variants)))
        for table, data in tables:
            # Every table, orders included, as its own "table variant" with its own hints: hints
            # set on the resource itself would leak into the variants (dlt copies the resource's
            # columns into each variant).
            yield dlt.mark.with_hints(data, self.hints[table.name], create_table_variant=True)


def _explode(lists: pa.ChunkedArray, parent_ids: Any, parent_index: Any = None) -> tuple[pa.Table | None, Any, Any]:
    """Rows of a list<struct> column as a table with the parent's id (`order_id`) and each row's
    position in its list; returns (table, parent id per row, position per row)."""
    import numpy as np

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


def _cursor_value(resource: str, cursor_path: str) -> Any:
    """The committed cursor of another resource of this source (None before its first run)."""
    resources = dlt.current.source_state().get("resources", {})
    return resources.get(resource, {}).get("incremental", {}).get(cursor_path, {}).get("last_value")


def _prune(seen: dict[str, str], *, keep_days: float) -> None:
    """Forget follow-ups older than the listing's lookback can offer again, so state stays small."""
    stamps = [v for v in seen.values() if v]
    if not stamps:
        return
    horizon = _iso(max(_parse_ts(v) for v in stamps) - timedelta(days=keep_days))
    for key in [k for k, v in seen.items() if v and v < horizon]:
        del seen[key]
