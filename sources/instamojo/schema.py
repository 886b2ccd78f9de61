"""The raw tables this source writes: one declaration per table, used for dlt column hints,
for the Arrow conversion of API pages, and by tests that build raw tables by hand.

docs/raw-tables.md documents the same tables for people; this module is the executable form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The kinds of column the API sends. Each maps to one dlt data type (and so one SQL type on
# every destination): money is DECIMAL(18,2) and timestamps are timezone-aware UTC everywhere.
ColumnKind = Literal["text", "money", "timestamp", "date", "bool", "bigint", "json"]

MONEY_PRECISION = 18
MONEY_SCALE = 2

_DLT_TYPES: dict[str, dict] = {
    "text": {"data_type": "text"},
    "money": {"data_type": "decimal", "precision": MONEY_PRECISION, "scale": MONEY_SCALE},
    "timestamp": {"data_type": "timestamp", "timezone": True},
    "date": {"data_type": "date"},
    "bool": {"data_type": "bool"},
    "bigint": {"data_type": "bigint"},
    # JSON documents are stored as their text: an Arrow string column typed `json` would make dlt
    # warn about (and the destination coerce) every batch, and TEXT is portable.
    "json": {"data_type": "text"},
}

# Portable SQL for each kind (DuckDB and Postgres both accept these spellings).
SQL_TYPES: dict[str, str] = {
    "text": "TEXT",
    "money": f"DECIMAL({MONEY_PRECISION},{MONEY_SCALE})",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "bool": "BOOLEAN",
    "bigint": "BIGINT",
    "json": "TEXT",
}


@dataclass(frozen=True)
class Column:
    """One raw column.

    `source` is the API field it comes from (defaults to `name`); `id_of` names another API
    field holding a URL (or a bare id) whose last path segment this column stores.
    """

    name: str
    kind: ColumnKind = "text"
    source: str | None = None
    id_of: str | None = None
    nullable: bool = True

    @property
    def api_field(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Table:
    """A raw table: its columns, primary key and, for child tables, the merge key whose rows are
    replaced together (delete-insert on the merge key)."""

    name: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    merge_key: tuple[str, ...] = ()
    # the column whose latest value wins when one load holds the same key twice
    dedup_sort: str | None = None
    description: str = ""

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def money_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "money")

    def dlt_columns(self) -> dict[str, dict]:
        """Column hints for dlt: types, nullability, primary/merge keys, dedup sort."""
        hints: dict[str, dict] = {}
        for col in self.columns:
            hint = {"name": col.name, **_DLT_TYPES[col.kind], "nullable": col.nullable}
            if col.name in self.primary_key:
                hint["primary_key"] = True
                hint["nullable"] = False
            if col.name in self.merge_key:
                hint["merge_key"] = True
            if col.name == self.dedup_sort:
                hint["dedup_sort"] = "desc"
            hints[col.name] = hint
        return hints

    def create_table_sql(self, schema: str) -> str:
        """Portable DDL for this table in `schema` (used by tests that build raw data by hand)."""
        cols = ",\n  ".join(
            f"{c.name} {SQL_TYPES[c.kind]}{'' if c.nullable and c.name not in self.primary_key else ' NOT NULL'}"
            for c in self.columns
        )
        return f"CREATE TABLE {schema}.{self.name} (\n  {cols}\n)"


def _common(*cols: Column) -> tuple[Column, ...]:
    return (Column("merchant", nullable=False), *cols, Column("_synced_at", "timestamp"))


def _money(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, "money") for n in names)


USER_INFO = Table(
    "user_info",
    primary_key=("merchant",),
    description="The merchant's profile (scope user-info:read).",
    columns=_common(
        Column("full_name"),
        Column("signup_date", "date"),
        Column("username"),
        Column("city"),
        Column("website"),
    ),
)

USER_CONTACT = Table(
    "user_contact",
    primary_key=("merchant",),
    description="The merchant's contact details (scope user-contact:read).",
    columns=_common(
        Column("full_name"),
        Column("email"),
        Column("phone"),
        Column("username"),
        Column("account_id"),
    ),
)

PAYMENTS = Table(
    "payments",
    primary_key=("merchant", "id"),
    dedup_sort="updated_at",
    description="One row per payment; status true/false/NULL = successful/failed/pending.",
    columns=_common(
        Column("id", nullable=False),
        Column("title"),
        Column("payment_type"),
        Column("status", "bool"),
        Column("link"),
        Column("product"),
        Column("product_slug", id_of="product"),
        Column("seller"),
        Column("seller_id", id_of="seller"),
        Column("currency"),
        Column("amount", "money"),
        Column("name"),
        Column("email"),
        Column("phone"),
        Column("payout"),
        Column("payout_id", id_of="payout"),
        *_money("fees", "total_taxes"),
        Column("cases", "json"),
        Column("instrument_type"),
        Column("billing_instrument"),
        # `failure` is {"reason", "message"} (or a bare reason string, see convert.py)
        Column("failure_reason", source="failure.reason"),
        Column("failure_message", source="failure.message"),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
        Column("tax_invoice_id"),
        Column("resource_uri"),
    ),
)

PAYOUTS = Table(
    "payouts",
    primary_key=("merchant", "id"),
    description="One row per payout with every figure the API reports.",
    columns=_common(
        Column("id", nullable=False),
        Column("recipient"),
        Column("recipient_id", id_of="recipient"),
        Column("status", "bool"),
        Column("paid_out_at", "timestamp"),
        Column("currency"),
        *_money(
            "paid_amount",
            "sales_amount",
            "fee_amount",
            "total_tax_amount",
            "held_amount",
            "reversed_amount",
            "refunded_amount",
            "affiliate_commission_amount",
            "partner_commission_amount",
            "shipping_fee",
        ),
        Column("payout_type", "bigint"),
        Column("resource_uri"),
    ),
)

PRODUCTS = Table(
    "products",
    primary_key=("merchant", "slug"),
    description="One row per product (any status: Live, Archived, Pending Moderation).",
    columns=_common(
        Column("slug", nullable=False),
        Column("title"),
        Column("description"),
        Column("status"),
        # `user` is a reserved word in Postgres: stored as user_url so analysts need no quoting
        Column("user_url", source="user"),
        Column("user_id", id_of="user"),
        Column("shorturl"),
        Column("currency"),
        *_money("base_price", "min_price", "max_price"),
        Column("pay_what_you_want", "bool"),
        Column("limit_quantity", "bigint"),
        Column("purchased_quantity", "bigint"),
        Column("discount_public", "bool"),
        Column("requires_shipping", "bool"),
        Column("ships_within_days", "bigint"),
        Column("start_date"),
        Column("end_date"),
        Column("venue"),
        Column("timezone"),
        Column("redirect_url"),
        Column("redirect_time", "bigint"),
        Column("webhook_url"),
        Column("custom_note_success"),
        Column("is_signing_mandatory", "bool"),
        Column("created_at", "timestamp"),
        Column("resource_uri"),
    ),
)

PRODUCT_COVERS = Table(
    "product_covers",
    primary_key=("merchant", "product_slug", "id"),
    merge_key=("merchant", "product_slug"),
    description="Cover images of a product; a product's covers are replaced together.",
    columns=_common(
        Column("product_slug", nullable=False),
        Column("id", nullable=False),
        Column("image"),
        Column("thumbnail"),
        Column("position", "bigint"),
    ),
)

ORDERS = Table(
    "orders",
    primary_key=("merchant", "id"),
    description="One row per order of the merchant's online store.",
    columns=_common(
        Column("id", nullable=False),
        Column("title"),
        Column("currency"),
        Column("created_at", "timestamp"),
        Column("buyer_email"),
        Column("buyer_name"),
        Column("buyer_phone"),
        Column("buyer_address"),
        Column("buyer_city"),
        Column("buyer_state"),
        Column("buyer_zip"),
        Column("buyer_country"),
        Column("amount", "money"),
        Column("order_status"),
        Column("payments_uri"),
    ),
)

ORDER_PAYMENTS = Table(
    "order_payments",
    primary_key=("merchant", "order_id", "payment_id"),
    merge_key=("merchant", "order_id"),
    description="The payments nested in an order, as the order reports them.",
    columns=_common(
        Column("order_id", nullable=False),
        Column("payment_id", nullable=False),
        Column("amount", "money"),
        Column("instrument_type"),
        Column("status"),
        Column("resource_uri"),
    ),
)

ORDER_ITEMS = Table(
    "order_items",
    primary_key=("merchant", "order_id", "item_index"),
    merge_key=("merchant", "order_id"),
    description="The items of an order, in the API's order (item_index from 0).",
    columns=_common(
        Column("order_id", nullable=False),
        Column("item_index", "bigint", nullable=False),
        Column("unit_price", "money"),
        Column("quantity", "bigint"),
        Column("amount", "money"),
        Column("is_shipping_required", "bool"),
        Column("seller"),
        Column("seller_id", id_of="seller"),
        Column("shipping_charge_logic"),
        Column("shipping_charges", "money"),
        Column("product"),
        Column("product_slug", id_of="product"),
        Column("discount", "money"),
        Column("order_url", source="order"),
    ),
)

ORDER_ITEM_VARIANTS = Table(
    "order_item_variants",
    primary_key=("merchant", "order_id", "item_index", "variant_index"),
    merge_key=("merchant", "order_id"),
    description="The variants chosen for an order item (e.g. Size = M).",
    columns=_common(
        Column("order_id", nullable=False),
        Column("item_index", "bigint", nullable=False),
        Column("variant_index", "bigint", nullable=False),
        Column("name"),
        Column("value"),
    ),
)

RAW_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        USER_INFO,
        USER_CONTACT,
        PAYMENTS,
        PAYOUTS,
        PRODUCTS,
        PRODUCT_COVERS,
        ORDERS,
        ORDER_PAYMENTS,
        ORDER_ITEMS,
        ORDER_ITEM_VARIANTS,
    )
}
