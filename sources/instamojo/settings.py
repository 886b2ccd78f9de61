"""The endpoints this source reads and the defaults for its knobs (style of dlt's verified
sources: constants here, HTTP in client.py, resources in source.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import (
    ORDERS,
    PAYMENTS,
    PAYOUTS,
    PRODUCT_COVERS,
    PRODUCTS,
    USER_CONTACT,
    USER_INFO,
    Table,
)


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: where it is, which scope it needs, the list envelope's key (None for a
    single object) and the table it lands in."""

    path: str
    scope: str
    envelope_key: str | None
    table: Table


USER_INFO_ENDPOINT = Endpoint("/v2/user-info/", "user-info:read", None, USER_INFO)
USER_CONTACT_ENDPOINT = Endpoint("/v2/user-contact/", "user-contact:read", None, USER_CONTACT)
PAYMENTS_ENDPOINT = Endpoint("/v2/payments/", "payments:read", "payments", PAYMENTS)
PAYOUTS_ENDPOINT = Endpoint("/v2/payouts/", "payouts:read", "payouts", PAYOUTS)
PRODUCTS_ENDPOINT = Endpoint("/v2/products/", "products:read", "products", PRODUCTS)
COVERS_ENDPOINT = Endpoint("/v2/products/{slug}/covers/", "products:read", "covers", PRODUCT_COVERS)
ORDERS_ENDPOINT = Endpoint("/v2/orders/", "orders:read", "orders", ORDERS)

# The resources a user selects (`--resources`), each with the scope it needs. Some are served by
# more than one dlt resource (payouts also re-read their payments; orders have child tables).
RESOURCE_SCOPES: dict[str, str] = {
    "user_info": USER_INFO_ENDPOINT.scope,
    "user_contact": USER_CONTACT_ENDPOINT.scope,
    "payouts": PAYOUTS_ENDPOINT.scope,
    "products": PRODUCTS_ENDPOINT.scope,
    "orders": ORDERS_ENDPOINT.scope,
    "payments": PAYMENTS_ENDPOINT.scope,
}
ALL_RESOURCES: tuple[str, ...] = tuple(RESOURCE_SCOPES)
ALL_SCOPES: tuple[str, ...] = tuple(dict.fromkeys(RESOURCE_SCOPES.values()))

DEFAULT_BASE_URL = "https://api.instamojo.com"

# Lookback windows (days): how far behind its cursor each listing re-reads, to catch records
# that change after creation. A pending payment resolves within hours; its payout link (set T+3
# business days later) is caught by re-reading the payments of each new payout; an order paid
# days later by the pending-order watch; refunds and disputes weeks later by a periodic run with
# a longer lookback (`sync --lookback-days 30`). So a day covers what only a lookback can catch,
# and keeps a sync with nothing new cheap for a busy merchant.
DEFAULT_PAYMENTS_LOOKBACK_DAYS = 1.0
DEFAULT_PAYOUTS_LOOKBACK_DAYS = 1.0
DEFAULT_PRODUCTS_LOOKBACK_DAYS = 1.0
DEFAULT_ORDERS_LOOKBACK_DAYS = 1.0
# Pending orders are re-read every run so an order that becomes paid is updated; abandoned
# carts stay pending forever, so only those created within this window are re-read.
DEFAULT_PENDING_ORDERS_WINDOW_DAYS = 30.0
# Products change after they are created (price, archived, stock) and no filter finds changed
# ones: the whole catalogue is read again this often (usually one page per merchant).
DEFAULT_PRODUCTS_FULL_READ_HOURS = 24.0

DEFAULT_PAGE_CONCURRENCY = 16
# Records per page asked for with the `limit` parameter: Instamojo's SDKs document a default of 50
# and a maximum of 500 (https://github.com/Instamojo/instamojo-java). Fewer, larger pages cost
# less per record; what a page really holds is read off the first page of each listing.
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
# Merchants fetched at the same time (each keeps up to `page_concurrency` requests in flight on
# its large listings). The work is waiting on the network: more helps on a slow link.
DEFAULT_MERCHANT_CONCURRENCY = 16
# Records gathered before they are converted and handed to dlt as one Arrow table: large enough
# that per-batch overhead vanishes, small enough that memory does not grow with history.
DEFAULT_BATCH_ROWS = 20_000
