"""Clean raw data for the checks' tests, by hand: small, domain-consistent, two merchants.

Per merchant (`m1`, `m2`; ids are prefixed with the merchant so references across merchants
are detectable): a profile and contact; three payments — one successful and paid out, one
failed, one pending — and one payout that settles the successful one; a product with a cover;
an order paid by the successful payment, with one item and a variant.

Figures follow the domain: ₹1000.00 domestic → fee 2% + ₹3 = 23.00, GST 18% of the fee = 4.14,
net 972.86 = the payout's paid_amount (paid = sales − fee − tax, nothing held or refunded).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

from tests.raw_fixtures import create_raw_tables, insert_rows

UTC = dt.UTC
CREATED = dt.datetime(2024, 11, 4, 5, 30, tzinfo=UTC)  # Monday 11:00 in Asia/Kolkata
PAID_OUT = dt.datetime(2024, 11, 7, 6, 0, tzinfo=UTC)  # T+3 business days
MERCHANTS = ("m1", "m2")


def clean_rows(merchants: tuple[str, ...] = MERCHANTS) -> dict[str, list[dict[str, Any]]]:
    """Rows for every raw table, keyed by table name."""
    rows: dict[str, list[dict[str, Any]]] = {}

    def add(table: str, **row: Any) -> None:
        rows.setdefault(table, []).append(row)

    for m in merchants:
        add("user_info", merchant=m, full_name=f"Merchant {m}", signup_date=dt.date(2019, 6, 3),
            username=m, city="Bengaluru", website=f"https://{m}.example")
        add("user_contact", merchant=m, full_name=f"Merchant {m}", email=f"{m}@example.com",
            phone="+919876543212", username=m, account_id=f"acct-{m}")
        add("payouts", merchant=m, id=f"{m}-PO1", recipient_id=m, status=True, paid_out_at=PAID_OUT,
            currency="INR", paid_amount=D("972.86"), sales_amount=D("1000.00"), fee_amount=D("23.00"),
            total_tax_amount=D("4.14"), held_amount=D("0.00"), reversed_amount=D("0.00"),
            refunded_amount=D("0.00"), affiliate_commission_amount=D("0.00"),
            partner_commission_amount=D("0.00"), shipping_fee=D("0.00"), payout_type=0,
            _synced_at=PAID_OUT)
        common = dict(merchant=m, currency="INR", seller_id=m, instrument_type="CARD",
                      payment_type="api_rap", _synced_at=PAID_OUT)
        add("payments", **common, id=f"{m}-P1", title="Book", status=True, amount=D("1000.00"),
            fees=D("23.00"), total_taxes=D("4.14"), payout_id=f"{m}-PO1", created_at=CREATED,
            updated_at=PAID_OUT, product_slug="book")
        add("payments", **common, id=f"{m}-P2", title="Book", status=False, amount=D("500.00"),
            fees=D("0.00"), total_taxes=D("0.00"), failure_reason="AUTHENTICATION_FAILED",
            created_at=CREATED, updated_at=CREATED)
        add("payments", **common, id=f"{m}-P3", title="Book", status=None, amount=D("250.50"),
            fees=D("0.00"), total_taxes=D("0.00"), created_at=CREATED, updated_at=CREATED)
        add("products", merchant=m, slug="book", title="Book", status="Live", user_id=m,
            currency="INR", base_price=D("1000.00"), min_price=None, max_price=None,
            pay_what_you_want=False, purchased_quantity=1, created_at=CREATED - dt.timedelta(days=30))
        add("product_covers", merchant=m, product_slug="book", id="1", image="https://img/1.png",
            thumbnail="https://img/1t.png", position=0)
        add("orders", merchant=m, id=f"{m}-O1", title="Book", currency="INR", created_at=CREATED,
            buyer_name="Buyer", amount=D("1000.00"), order_status="Fully Paid")
        add("order_payments", merchant=m, order_id=f"{m}-O1", payment_id=f"{m}-P1",
            amount=D("1000.00"), instrument_type="CARD", status="Success")
        add("order_items", merchant=m, order_id=f"{m}-O1", item_index=0, unit_price=D("1000.00"),
            quantity=1, amount=D("1000.00"), is_shipping_required=False, seller_id=m,
            shipping_charges=None, product_slug="book", discount=None)
        add("order_item_variants", merchant=m, order_id=f"{m}-O1", item_index=0, variant_index=0,
            name="Format", value="Hardcover")
    return rows


def load_raw(connection: Any, schema: str, rows: dict[str, list[dict[str, Any]]] | None = None,
             tables: list[str] | None = None) -> None:
    """Create the raw tables in `schema` (all, or `tables`) and insert `rows` (clean by default)."""
    rows = clean_rows() if rows is None else rows
    create_raw_tables(connection, schema, tables)
    for table, table_rows in rows.items():
        if tables is None or table in tables:
            insert_rows(connection, schema, table, table_rows)
