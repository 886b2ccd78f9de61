"""Compare a warehouse with the sandbox's ground truth, field by field.

Independent of the source's own conversion code on purpose: expected values are computed here
from the API's JSON with plain Python (Decimal for money, fromisoformat for time), so a bug in the
source's conversion cannot agree with itself.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from instamojo_sandbox import Sandbox
from transforms.warehouse import Warehouse


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _last(url: str | None) -> str | None:
    return None if url is None else url.rstrip("/").rsplit("/", 1)[-1]


def expected_tables(sandbox: Sandbox, merchants: list[str]) -> dict[str, dict[tuple, tuple]]:
    """table → {primary key: compared values}, from the sandbox's ground truth."""
    out: dict[str, dict[tuple, tuple]] = {t: {} for t in TABLE_QUERIES}
    for m in merchants:
        info, contact = sandbox.truth(m, "user_info"), sandbox.truth(m, "user_contact")
        out["user_info"][(m,)] = (info["full_name"], info["username"], info["city"], info["website"])
        out["user_contact"][(m,)] = (contact["email"], contact["phone"], contact["account_id"])
        for p in sandbox.truth(m, "payments"):
            out["payments"][(m, p["id"])] = (
                p["status"], _money(p["amount"]), _money(p["fees"]), _money(p["total_taxes"]),
                _last(p["payout"]), _ts(p["created_at"]), _ts(p["updated_at"]), p["instrument_type"],
                p["currency"], _last(p["seller"]),
            )
        for p in sandbox.truth(m, "payouts"):
            out["payouts"][(m, p["id"])] = (
                _ts(p["paid_out_at"]), *(
                    _money(p[f]) for f in (
                        "paid_amount", "sales_amount", "fee_amount", "total_tax_amount", "held_amount",
                        "reversed_amount", "refunded_amount", "affiliate_commission_amount",
                        "partner_commission_amount", "shipping_fee",
                    )
                ), p["payout_type"],
            )
        for p in sandbox.truth(m, "products"):
            out["products"][(m, p["slug"])] = (
                p["title"], p["status"], _money(p["base_price"]), _money(p["min_price"]),
                _money(p["max_price"]), _ts(p["created_at"]),
            )
        for slug, covers in sandbox.truth(m, "product_covers").items():
            for c in covers:
                out["product_covers"][(m, slug, str(c["id"]))] = (c["image"], c["position"])
        for o in sandbox.truth(m, "orders"):
            out["orders"][(m, o["id"])] = (_money(o["amount"]), o["order_status"], _ts(o["created_at"]), o["buyer_email"])
            for p in o["payments"]:
                out["order_payments"][(m, o["id"], p["payment_id"])] = (_money(p["amount"]), p["status"])
            for i, item in enumerate(o["items"]):
                out["order_items"][(m, o["id"], i)] = (
                    _money(item["unit_price"]), item["quantity"], _money(item["amount"]), _last(item["product"]),
                )
                for j, v in enumerate(item.get("variants") or []):
                    out["order_item_variants"][(m, o["id"], i, j)] = (v["name"], v["value"])
    return out


# table → (key columns, compared columns), in the order expected_tables builds them
TABLE_QUERIES: dict[str, tuple[str, str]] = {
    "user_info": ("merchant", "full_name, username, city, website"),
    "user_contact": ("merchant", "email, phone, account_id"),
    "payments": ("merchant, id", "status, amount, fees, total_taxes, payout_id, created_at, updated_at, "
                 "instrument_type, currency, seller_id"),
    "payouts": ("merchant, id", "paid_out_at, paid_amount, sales_amount, fee_amount, total_tax_amount, "
                "held_amount, reversed_amount, refunded_amount, affiliate_commission_amount, "
                "partner_commission_amount, shipping_fee, payout_type"),
    "products": ("merchant, slug", "title, status, base_price, min_price, max_price, created_at"),
    "product_covers": ("merchant, product_slug, id", "image, position"),
    "orders": ("merchant, id", "amount, order_status, created_at, buyer_email"),
    "order_payments": ("merchant, order_id, payment_id", "amount, status"),
    "order_items": ("merchant, order_id, item_index", "unit_price, quantity, amount, product_slug"),
    "order_item_variants": ("merchant, order_id, item_index, variant_index", "name, value"),
}


def actual_tables(warehouse: Warehouse, schema: str, merchants: list[str],
                  tables: list[str] | None = None) -> dict[str, dict[tuple, tuple]]:
    """table → {primary key: values} for `merchants`; a key that appears twice fails."""
    out: dict[str, dict[tuple, tuple]] = {}
    in_list = ", ".join(f"'{m}'" for m in merchants)
    for table in tables or TABLE_QUERIES:
        keys, cols = TABLE_QUERIES[table]
        nkeys = len(keys.split(","))
        _, rows = warehouse.query(f"SELECT {keys}, {cols} FROM {schema}.{table} WHERE merchant IN ({in_list})")
        by_key: dict[tuple, tuple] = {}
        for row in rows:
            key, values = tuple(row[:nkeys]), tuple(_normalize(v) for v in row[nkeys:])
            assert key not in by_key, f"{table}: duplicate row for key {key}"
            by_key[key] = values
        out[table] = by_key
    return out


def _normalize(value: Any) -> Any:
    # DuckDB returns timestamptz in the session zone; compare instants, not wall clocks
    return value.astimezone(datetime.now().astimezone().tzinfo).replace(tzinfo=None) if isinstance(value, datetime) else value


def assert_warehouse_matches(warehouse: Warehouse, schema: str, sandbox: Sandbox, merchants: list[str],
                             tables: list[str] | None = None, subset: bool = False) -> dict[str, int]:
    """Every table equals the ground truth exactly (ids, amounts to the paisa, links, children);
    returns rows per table. `subset`: rows may be missing, but every row present is exact."""
    expected = expected_tables(sandbox, merchants)
    actual = actual_tables(warehouse, schema, merchants, tables)
    counts = {}
    for table, rows in actual.items():
        want = {k: tuple(_normalize(v) for v in vals) for k, vals in expected[table].items()}
        missing = [] if subset else sorted(set(want) - set(rows))[:5]
        extra = sorted(set(rows) - set(want))[:5]
        assert not missing and not extra, f"{table}: missing {missing}, unexpected {extra}"
        wrong = [(k, want[k], rows[k]) for k in want if k in rows and want[k] != rows[k]][:3]
        assert not wrong, f"{table}: values differ (key, expected, actual): {wrong}"
        counts[table] = len(rows)
    return counts


def count_where(warehouse: Warehouse, sql: str) -> int:
    return warehouse.query(sql)[1][0][0]


