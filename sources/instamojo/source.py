"""The dlt source: every merchant of a run, fetched concurrently, loaded together.

Why one resource for all merchants: dlt's costs per run (configuration, state, schema, normalize,
load, the merge) are paid once however many merchants there are, and its costs per resource are
not multiplied by thousands of merchants. Many OAuth configurations in one extract is not
something dlt offers (https://github.com/dlt-hub/dlt/issues/3283), so the concurrency is here: a
bounded pool of merchant workers (the work is I/O) each runs `MerchantSync` (its own token, its
own state) and hands its Arrow batches to this generator, which gathers them per table across
merchants into large batches for dlt. Each batch carries its table's hints (merge on keys, typed
columns), so one resource fills every raw table.

Per-merchant state lives in dlt's source state under `merchants.<name>` (see `state.py`); a
merchant's part is replaced only by what its run committed, so one merchant's failure (revoked
token, a scope, a malformed page, retries exhausted) never moves its cursors, and never stops or
corrupts the others.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from . import settings as s
from .auth import ClientCredentials
from .errors import redact, register_secret
from .identity import Account, AccountRegistry
from .limits import HttpClients, RequestLimits
from .merchant import FetchOptions, MerchantSpec, MerchantSync
from .personal import KEEP_ALL, PersonalDataPolicy
from .resources.common import ListingOptions, RunNotes
from .schema import Table
from .state import MerchantState
from .token_store import DEFAULT_TOKEN_STORE, TokenStore

# delete-insert: the one merge strategy that both de-duplicates a load (latest `updated_at` wins,
# via the `dedup_sort` hint) and replaces child rows per merge key
MERGE = {"disposition": "merge", "strategy": "delete-insert"}

# Merchant batches waiting for the generator; workers block when it is full, so memory stays
# bounded by this many batches whatever the number of merchants.
_QUEUE_BATCHES = 64


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


class TableBatches:
    """Gathers Arrow tables per raw table across merchants and hands dlt one batch of about
    `rows` rows at a time, marked with its table's hints."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._tables: dict[str, Table] = {}
        self._parts: dict[str, list[pa.Table]] = {}
        self._counts: dict[str, int] = {}
        self._hints: dict[str, Any] = {}

    def add(self, table: Table, rows: pa.Table) -> Iterator[Any]:
        self._tables[table.name] = table
        self._parts.setdefault(table.name, []).append(rows)
        self._counts[table.name] = self._counts.get(table.name, 0) + rows.num_rows
        if self._counts[table.name] >= self.rows:
            yield self._take(table.name)

    def flush(self) -> Iterator[Any]:
        for name in list(self._parts):
            if self._parts[name]:
                yield self._take(name)

    def _take(self, name: str) -> Any:
        parts, self._parts[name], self._counts[name] = self._parts[name], [], 0
        # merchants may differ in the API fields they sent (an unknown field becomes a column)
        data = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
        if name not in self._hints:
            self._hints[name] = dlt.mark.make_hints(table_name=name, **table_hints(self._tables[name]))
        # every table as its own "table variant" with its own hints: hints set on the resource
        # itself would apply to every table it fills
        return dlt.mark.with_hints(data, self._hints[name], create_table_variant=True)


class _Cancelled(BaseException):
    """The run is being torn down (an error or an interrupt): workers stop at their next batch.
    A BaseException, so that no merchant's error handling mistakes it for a failure of its own."""


@dlt.source(name="instamojo", section="instamojo", max_table_nesting=0)
def instamojo_source(
    merchants: Any = dlt.config.value,
    base_url: str = dlt.config.value,
    client_id: str = dlt.secrets.value,
    client_secret: TSecretStrValue = dlt.secrets.value,
    token_store_path: str = str(DEFAULT_TOKEN_STORE),
    resources: Sequence[str] | None = None,
    backfill_from: datetime | None = None,
    payments_lookback_days: float = s.DEFAULT_PAYMENTS_LOOKBACK_DAYS,
    payouts_lookback_days: float = s.DEFAULT_PAYOUTS_LOOKBACK_DAYS,
    products_lookback_days: float = s.DEFAULT_PRODUCTS_LOOKBACK_DAYS,
    orders_lookback_days: float = s.DEFAULT_ORDERS_LOOKBACK_DAYS,
    pending_orders_window_days: float = s.DEFAULT_PENDING_ORDERS_WINDOW_DAYS,
    products_full_read_hours: float = s.DEFAULT_PRODUCTS_FULL_READ_HOURS,
    page_concurrency: int = s.DEFAULT_PAGE_CONCURRENCY,
    page_size: int | None = s.DEFAULT_PAGE_SIZE,
    merchant_concurrency: int = s.DEFAULT_MERCHANT_CONCURRENCY,
    max_requests_per_second: float | None = None,
    app_max_requests_per_second: float | None = None,
    batch_rows: int = s.DEFAULT_BATCH_ROWS,
    inherited_state: Any | None = None,
    notes: Any | None = None,
    on_merchant_done: Any | None = None,
    pii_policy: Any = None,
) -> DltResource:
    """Instamojo data of every merchant given, each with its own OAuth tokens and state.

    Args:
        merchants: The merchants to sync: names, or `MerchantSpec`s carrying the refresh token
            configured for each (secrets.toml or environment); without one, the token store's.
            Every row carries its merchant's name.
        base_url: The API's base URL (the sandbox's for the demo and tests).
        client_id: The app's OAuth client id.
        client_secret: The app's OAuth client secret.
        token_store_path: The folder of refresh tokens between runs (one 0600 file per merchant);
            a rotated token is always written there before it is used.
        resources: Which of user_info, user_contact, payouts, products, orders, payments to read
            (default: all each merchant granted). A resource whose scope a merchant did not grant
            is skipped for that merchant, with a warning in its notes.
        backfill_from: Re-read everything created (or paid out) since this instant. A backfill
            neither reads nor moves the incremental cursors.
        payments_lookback_days: How far behind its cursor the payments listing re-reads.
        payouts_lookback_days: How far behind its cursor the payouts listing re-reads.
        products_lookback_days: How far behind its cursor the products listing re-reads.
        orders_lookback_days: How far behind its cursor the orders listing re-reads.
        pending_orders_window_days: Pending orders created this long before the newest order are
            re-read every run.
        products_full_read_hours: The whole product catalogue is read again this often (changes
            to old products: price, archived, stock).
        page_concurrency: Pages of one listing fetched in parallel once the count is known.
        page_size: Records per page asked for with the `limit` parameter (Instamojo's SDKs: default
            50, at most 500); None leaves it to the API. What pages really hold is read off them.
        merchant_concurrency: Merchants fetched at the same time.
        max_requests_per_second: Optional limit per merchant token.
        app_max_requests_per_second: Optional limit for the whole app (all merchants together).
        batch_rows: Rows per Arrow table handed to dlt (gathered across merchants).
        inherited_state: Optional `callable(merchant) -> state or None`, asked for merchants that
            have no state here yet (state from an earlier version's per-merchant pipelines, or
            from another shard).
        notes: Optional dict, filled with each merchant's `RunNotes` as it finishes.
        on_merchant_done: Optional `callable(RunNotes)`, called as each merchant finishes (progress).
        pii_policy: Optional `PersonalDataPolicy` (personal.py): which personal fields are
            pseudonymized or dropped before any row leaves the source (default: all kept).
    """
    specs = [m if isinstance(m, MerchantSpec) else MerchantSpec(str(m)) for m in merchants]
    wanted = tuple(resources or s.ALL_RESOURCES)
    unknown = [r for r in wanted if r not in s.RESOURCE_SCOPES]
    if unknown:
        raise ValueError(f"unknown resources {unknown}; choose from {', '.join(s.ALL_RESOURCES)}")
    register_secret(client_secret)
    for spec in specs:
        register_secret(spec.refresh_token)
    options = FetchOptions(
        base_url=base_url,
        credentials=ClientCredentials(client_id, client_secret),
        resources=wanted,
        listing=ListingOptions(
            payments_lookback_days=payments_lookback_days, payouts_lookback_days=payouts_lookback_days,
            products_lookback_days=products_lookback_days, orders_lookback_days=orders_lookback_days,
            pending_orders_window_days=pending_orders_window_days, products_full_read_hours=products_full_read_hours,
            batch_rows=batch_rows,
            backfill_from=backfill_from,
        ),
        page_concurrency=page_concurrency,
        page_size=page_size,
        personal=pii_policy if isinstance(pii_policy, PersonalDataPolicy) else KEEP_ALL,
    )
    limits = RequestLimits(per_merchant=max_requests_per_second, per_app=app_max_requests_per_second)
    found: dict[str, RunNotes] = notes if isinstance(notes, dict) else {}

    def all_merchants() -> Iterator[Any]:
        states: dict[str, MerchantState] = dlt.current.source_state().setdefault("merchants", {})
        yield from _run_merchants(
            specs, states, options=options, store=TokenStore(token_store_path),
            http=HttpClients(limits, max_connections=max(16, merchant_concurrency * 2)),
            concurrency=merchant_concurrency, batch_rows=batch_rows,
            inherited=inherited_state, notes=found, on_done=on_merchant_done,
        )

    return dlt.resource(all_merchants, name="merchants")


def _run_merchants(
    specs: list[MerchantSpec],
    states: dict[str, MerchantState],
    *,
    options: FetchOptions,
    store: TokenStore,
    http: HttpClients,
    concurrency: int,
    batch_rows: int,
    inherited: Callable[[str], MerchantState | None] | None,
    notes: dict[str, RunNotes],
    on_done: Callable[[RunNotes], None] | None,
) -> Iterator[Any]:
    """Run the merchants on a pool of workers; yield their rows as large batches per table; put
    each merchant's committed state into `states` (dlt's source state) as it finishes."""
    inbox: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=_QUEUE_BATCHES)
    cancelled = threading.Event()

    def send(item: tuple[Any, ...]) -> None:
        while True:
            if cancelled.is_set():
                raise _Cancelled()
            try:
                inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    registry = _known_accounts(states, store)

    def work(spec: MerchantSpec, prior: MerchantState | None) -> None:
        merchant_notes, committed = RunNotes(spec.name), None
        try:
            sync = MerchantSync(spec, prior, options=options, http=http, token_store=store,
                                emit=lambda table, rows: send(("rows", table, rows)), registry=registry)
            committed = sync.run()
            merchant_notes = sync.notes
        except _Cancelled:
            return
        except BaseException as exc:  # never leave the generator waiting for this merchant
            merchant_notes.errors.append(redact(f"merchant {spec.name!r}: {exc.__class__.__name__}: {exc}"))
            merchant_notes.finished = True
        send(("done", spec.name, merchant_notes, committed))

    priors: dict[str, MerchantState | None] = {}
    for spec in specs:
        priors[spec.name] = states.get(spec.name)
        if priors[spec.name] is None and inherited is not None:
            priors[spec.name] = inherited(spec.name)
    batches = TableBatches(batch_rows)
    pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="instamojo-merchant")
    try:
        for spec in specs:
            pool.submit(work, spec, priors[spec.name])
        remaining = len(specs)
        while remaining:
            item = inbox.get()
            if item[0] == "rows":
                yield from batches.add(item[1], item[2])
                continue
            _, name, merchant_notes, committed = item
            if committed is not None:
                states[name] = committed
            notes[name] = merchant_notes
            remaining -= 1
            if on_done is not None:
                on_done(merchant_notes)
        yield from batches.flush()
    finally:
        cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _known_accounts(states: dict[str, MerchantState], store: TokenStore) -> AccountRegistry:
    """Every account already known under a name: from the merchants' states and the token store."""
    known: dict[str, Account] = {}
    for merchant, entry in store.merchants().items():
        if entry.account_id or entry.account_username:
            known[merchant] = Account(entry.account_id, entry.account_username)
    for merchant, state in states.items():
        account = Account.from_state(state.get("account"))
        if account is not None:
            known[merchant] = account
    return AccountRegistry(known)
