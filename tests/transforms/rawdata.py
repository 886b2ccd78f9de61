"""Raw rows for hand-computed transform tests: small builders over `tests.raw_fixtures`.

Money is given as strings and stored as Decimal; times are built in Asia/Kolkata (the zone the
settlement rule counts days in) and stored timezone-aware, as the source stores them (UTC).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def ist(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in Asia/Kolkata."""
    return datetime(year, month, day, hour, minute, tzinfo=IST)


def money(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def payment(
    id: str,
    amount: str | None,
    fees: str | None,
    taxes: str | None,
    at: datetime,
    *,
    status: bool | None = True,
    payout: str | None = None,
    merchant: str = "m1",
    **extra,
) -> dict:
    """A raw payments row. status: True successful, False failed, None pending."""
    return {
        "merchant": merchant,
        "id": id,
        "status": status,
        "currency": "INR",
        "amount": money(amount),
        "fees": money(fees),
        "total_taxes": money(taxes),
        "payout_id": payout,
        "created_at": at,
        "updated_at": at,
        **extra,
    }


def payout(
    id: str,
    at: datetime,
    *,
    paid: str | None,
    sales: str | None,
    fee: str,
    tax: str,
    held: str = "0.00",
    reversed: str = "0.00",
    refunded: str = "0.00",
    affiliate: str = "0.00",
    partner: str = "0.00",
    shipping: str = "0.00",
    merchant: str = "m1",
) -> dict:
    """A raw payouts row with every figure."""
    return {
        "merchant": merchant,
        "id": id,
        "status": True,
        "paid_out_at": at,
        "currency": "INR",
        "paid_amount": money(paid),
        "sales_amount": money(sales),
        "fee_amount": money(fee),
        "total_tax_amount": money(tax),
        "held_amount": money(held),
        "reversed_amount": money(reversed),
        "refunded_amount": money(refunded),
        "affiliate_commission_amount": money(affiliate),
        "partner_commission_amount": money(partner),
        "shipping_fee": money(shipping),
        "payout_type": 0,
    }


def order(id: str, amount: str | None, status: str | None, at: datetime, *, merchant: str = "m1") -> dict:
    """A raw orders row."""
    return {
        "merchant": merchant,
        "id": id,
        "title": f"order {id}",
        "currency": "INR",
        "created_at": at,
        "amount": money(amount),
        "order_status": status,
    }


def order_payment(order_id: str, payment_id: str, amount: str | None, status: str, *, merchant: str = "m1") -> dict:
    """A raw order_payments row (a payment nested in an order); status Success/Failed/Pending."""
    return {
        "merchant": merchant,
        "order_id": order_id,
        "payment_id": payment_id,
        "amount": money(amount),
        "status": status,
    }
