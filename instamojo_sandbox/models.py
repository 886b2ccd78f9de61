"""The records the sandbox serves, each carrying its whole timeline.

A model knows every instant at which its visible state changes (created, resolved, paid out,
refunded, ...). What the API serves is ``model.render(now)``: a pure function of the model and
the clock, so advancing the clock by two days equals advancing it twice by one day.

Money is Decimal; instants are int microseconds since the epoch (see :mod:`timeutil`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from .rules import ZERO, fee_strings
from .timeutil import iso

if TYPE_CHECKING:
    from .store import Rec

ORDER_PAYMENT_STATUS = {True: "Success", False: "Failed", None: "Pending"}

_JS: dict[str, str] = {}
_LITERAL = {True: "true", False: "false", None: "null"}
_INSTRUMENT_JSON: dict[tuple[str, str], str] = {}


def js(value) -> str:
    """The JSON literal of a string (cached: titles, URLs and instruments repeat), None or bool."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    out = _JS.get(value)
    if out is None:
        out = orjson.dumps(value).decode()
        if len(_JS) < 500_000:
            _JS[value] = out
    return out


def _dumps(value) -> str:
    """The JSON literal of a value that does not repeat (not cached, unlike :func:`js`)."""
    return orjson.dumps(value).decode()


PRODUCT_STATUS_LABELS = {20: "Live", 30: "Archived", 33: "Pending Moderation"}
_ORDER_PAYMENT_STATUS_JSON = {k: f'"{v}"' for k, v in {True: "Success", False: "Failed", None: "Pending"}.items()}


@dataclass
class MerchantCtx:
    """A merchant's identity and the absolute URLs its records refer to."""

    index: int
    username: str
    account_id: str
    full_name: str
    email: str
    phone: str
    city: str | None
    website: str | None
    signup_date: str
    invoice_prefix: str
    base_url: str
    seller_url: str = field(init=False)
    payments_url: str = field(init=False)
    payouts_url: str = field(init=False)
    products_url: str = field(init=False)
    orders_url: str = field(init=False)
    #: the JSON string literal of payments_url without its closing quote (ids are appended)
    payments_url_json_open: str = field(init=False)
    #: seller_url as a JSON string literal
    seller_json: str = field(init=False)

    def __post_init__(self) -> None:
        b = self.base_url
        self.seller_url = f"{b}/v2/users/{self.account_id}/"
        self.payments_url = f"{b}/v2/payments/"
        self.payments_url_json_open = orjson.dumps(self.payments_url).decode()[:-1]
        self.seller_json = orjson.dumps(self.seller_url).decode()
        self.payouts_url = f"{b}/v2/payouts/"
        self.products_url = f"{b}/v2/products/"
        self.orders_url = f"{b}/v2/orders/"

    def user_info(self) -> dict:
        """The ``/v2/user-info/`` body."""
        return {
            "full_name": self.full_name,
            "signup_date": self.signup_date,
            "username": self.username,
            "city": self.city,
            "website": self.website,
        }

    def user_contact(self) -> dict:
        """The ``/v2/user-contact/`` body."""
        return {
            "full_name": self.full_name,
            "email": self.email,
            "phone": self.phone,
            "username": self.username,
            "account_id": self.account_id,
        }


class Buyer:
    """A buyer: PII for payments and orders; ``username``/``account_id`` when registered."""

    __slots__ = (
        "account_id",
        "address",
        "city",
        "email",
        "name",
        "order_json",
        "phone",
        "pii_json",
        "state",
        "username",
        "zip",
    )

    def __init__(self, name, email, phone, address, city, state, zip_code, username, account_id):
        self.name = name
        self.email = email
        self.phone = phone
        self.address = address
        self.city = city
        self.state = state
        self.zip = zip_code
        self.username = username
        self.account_id = account_id
        #: the payment fields name/email/phone as a JSON fragment (see PaymentModel.render_json)
        self.pii_json = f'"name":{js(name)},"email":{_dumps(email)},"phone":{_dumps(phone)}'
        #: the order fields buyer_email ... buyer_zip as a JSON fragment, made on first use
        self.order_json: str | None = None

    def order_fields_json(self) -> str:
        """The ``buyer_*`` fields of an order as a JSON fragment (see OrderModel.render_json)."""
        if self.order_json is None:
            # orders show the bare 10-digit number, payments the +91 form (as in the reference)
            self.order_json = (
                f'"buyer_email":{_dumps(self.email)},"buyer_name":{_dumps(self.name)},'
                f'"buyer_phone":{_dumps(self.phone[3:])},"buyer_address":{_dumps(self.address)},'
                f'"buyer_city":{js(self.city)},"buyer_state":{js(self.state)},"buyer_zip":{_dumps(self.zip)}'
            )
        return self.order_json


class Model:
    """Common bookkeeping: the served record (``rec``), a dirty flag for batched re-rendering."""

    __slots__ = ("dirty", "rec")
    kind = ""

    # (annotations only: the values live in the slots, set by the subclasses' __init__)
    rec: Rec | None
    dirty: bool

    def render(self, now: int) -> tuple[dict, object]:
        """The record as served at ``now`` and the filter tag of the record at ``now``."""
        raise NotImplementedError

    def is_final(self, now: int) -> bool:
        """True when nothing about this record can change after ``now``."""
        raise NotImplementedError


class PaymentModel(Model):
    """A payment attempt and its whole life: resolution, payout, hold, refund."""

    __slots__ = (
        "affiliate",
        "amount",
        "billing",
        "buyer",
        "case",
        "failure",
        "held",
        "id",
        "instrument",
        "intl",
        "invoice",
        "key",
        "link",
        "m",
        "order_id",
        "outcome",
        "partner",
        "payout",
        "product",
        "ptype",
        "refund_at",
        "resolved",
        "settle_day",
        "ship",
        "status",
        "title",
    )
    kind = "payments"

    id: str
    key: int
    m: MerchantCtx
    amount: Decimal
    title: str
    ptype: str
    buyer: Buyer | None
    product: ProductModel | None
    link: str | None
    order_id: str | None
    resolved: int | None
    status: bool | None
    failure: tuple[str, str] | None
    invoice: int | None
    payout: PayoutModel | None
    refund_at: int | None
    case: str | None
    held: bool
    outcome: str | None
    affiliate: Decimal
    partner: Decimal
    ship: Decimal
    settle_day: dt.date | None
    # set by the generator right after construction (not in __init__)
    instrument: str
    billing: str
    intl: bool

    def __init__(self, pid: str, created: int, m: MerchantCtx, amount: Decimal = ZERO, title: str = "",
                 ptype: str = "", buyer: Buyer | None = None, product=None, link: str | None = None,
                 order_id: str | None = None):
        self.id = pid
        self.key = created
        self.m = m
        self.amount = amount
        self.title = title
        self.ptype = ptype
        self.buyer = buyer
        self.product = product
        self.link = link
        self.order_id = order_id  # the order's id only: a reference to the order would make a cycle
        self.rec = None
        self.dirty = False
        self.resolved = None  # when the final status becomes visible; None = pending forever
        self.status = None
        self.failure = None
        self.invoice = None
        self.payout = None  # the PayoutModel that settles it, once built
        self.refund_at = None
        self.case = None
        self.held = False
        self.outcome = None  # "release" or "refund" for held payments
        self.affiliate = ZERO
        self.partner = ZERO
        self.ship = ZERO
        self.settle_day = None

    def visible_status(self, now: int):
        """true/false once resolved at ``now``, else None (pending)."""
        resolved = self.resolved
        if resolved is not None and resolved <= now:
            return self.status
        return None

    def render(self, now: int) -> tuple[dict, object]:
        m = self.m
        status = self.visible_status(now)
        updated = self.key
        resolved = self.resolved
        if status is not None and resolved is not None:  # (a visible status implies resolved)
            updated = resolved
        payout_url = payout_id = None
        payout = self.payout
        if payout is not None and payout.key <= now:
            payout_url, payout_id = payout.url, payout.id
            updated = max(updated, payout.key)
        cases: list[str | None] = []
        refund_at = self.refund_at
        if refund_at is not None and refund_at <= now:
            cases = [self.case]
            updated = max(updated, refund_at)
        if status is True:
            fees, taxes = fee_strings(self.amount, self.intl)
            invoice = f"{m.invoice_prefix}/{self.invoice:06d}"
        else:
            fees = taxes = "0.00"
            invoice = None
        failure = None
        if status is False:
            reason, message = self._failure()
            failure = {"reason": reason, "message": message}
        buyer = self._buyer()
        return {
            "id": self.id,
            "title": self.title,
            "payment_type": self.ptype,
            "status": status,
            "link": self.link,
            "product": None if self.product is None else self.product.url,
            "seller": m.seller_url,
            "currency": "INR",
            "amount": str(self.amount),
            "name": buyer.name,
            "email": buyer.email,
            "phone": buyer.phone,
            "payout": payout_url,
            "fees": fees,
            "total_taxes": taxes,
            "cases": cases,
            "instrument_type": self.instrument,
            "billing_instrument": self.billing,
            "failure": failure,
            "created_at": iso(self.key),
            "updated_at": iso(updated),
            "tax_invoice_id": invoice,
            "resource_uri": f"{m.payments_url}{self.id}/",
        }, payout_id  # the tag: the store indexes payments by the payout they show

    def render_json(self, now: int) -> tuple[bytes, object]:
        """:meth:`render` serialized straight to JSON bytes, without building a dict.

        The same fields in the same order (a test holds the two to each other); this is the
        path a million-payment build takes, about four times faster than dict + orjson.
        """
        m = self.m
        status = self.visible_status(now)
        updated = self.key
        resolved = self.resolved
        if status is not None and resolved is not None:  # (a visible status implies resolved)
            updated = resolved
        payout_json = "null"
        payout_id = None
        payout = self.payout
        if payout is not None and payout.key <= now:
            payout_json, payout_id = payout.url_json, payout.id
            updated = max(updated, payout.key)
        cases = "[]"
        refund_at = self.refund_at
        if refund_at is not None and refund_at <= now:
            cases = f"[{js(self.case)}]"
            updated = max(updated, refund_at)
        if status is True:
            fees, taxes = fee_strings(self.amount, self.intl)
            invoice = f'"{m.invoice_prefix}/{self.invoice:06d}"'  # digits and a slash
            failure = "null"
        else:
            fees = taxes = "0.00"
            invoice = "null"
            if status is None:
                failure = "null"
            else:
                reason, message = self._failure()
                failure = orjson.dumps({"reason": reason, "message": message}).decode()
        buyer = self.buyer
        if buyer is None:
            raise ValueError(f"payment {self.id} has no buyer: a served payment needs one")
        product = self.product
        instrument = _INSTRUMENT_JSON.get((self.instrument, self.billing))
        if instrument is None:
            instrument = _INSTRUMENT_JSON[(self.instrument, self.billing)] = (
                f'"instrument_type":{js(self.instrument)},"billing_instrument":{js(self.billing)}')
        text = (
            f'{{"id":"{self.id}","title":{js(self.title)},"payment_type":{js(self.ptype)},'
            f'"status":{_LITERAL[status]},"link":{js(self.link)},'
            f'"product":{"null" if product is None else product.url_json},"seller":{m.seller_json},'
            f'"currency":"INR","amount":"{self.amount}",{buyer.pii_json},"payout":{payout_json},'
            f'"fees":"{fees}","total_taxes":"{taxes}","cases":{cases},{instrument},'
            f'"failure":{failure},"created_at":"{iso(self.key)}",'
            f'"updated_at":"{iso(updated)}","tax_invoice_id":{invoice},'
            f'"resource_uri":{m.payments_url_json_open}{self.id}/"}}'
        )
        return text.encode(), payout_id

    def _buyer(self) -> Buyer:
        buyer = self.buyer
        if buyer is None:
            raise ValueError(f"payment {self.id} has no buyer: a served payment needs one")
        return buyer

    def _failure(self) -> tuple[str, str]:
        failure = self.failure
        if failure is None:
            raise ValueError(f"payment {self.id} failed without a failure (reason, message)")
        return failure

    def is_final(self, now: int) -> bool:
        if self.resolved is None:
            return True  # abandoned: pending forever, nothing else happens
        if self.resolved > now:
            return False
        if self.status is not True:
            return True
        if self.payout is None or self.payout.key > now:
            return False
        return self.refund_at is None or self.refund_at <= now

    def payout_id_at(self, now: int) -> str | None:
        """The id of the payout this payment shows at ``now`` (None until paid out)."""
        payout = self.payout
        if payout is not None and payout.key <= now:
            return payout.id
        return None


class PayoutModel(Model):
    """One payout: its figures and the hidden relations (which payments it settles, holds,
    releases and refunds)."""

    __slots__ = (
        "affiliate",
        "day",
        "fee",
        "held",
        "held_ids",
        "held_refunded_ids",
        "id",
        "key",
        "m",
        "paid",
        "partner",
        "payout_type",
        "refunded",
        "refunded_ids",
        "released_ids",
        "reversed",
        "sales",
        "settled_ids",
        "shipping",
        "tax",
        "url",
        "url_json",
    )
    kind = "payouts"

    id: str
    key: int
    day: dt.date
    m: MerchantCtx
    url: str
    url_json: str
    sales: Decimal
    fee: Decimal
    tax: Decimal
    held: Decimal
    reversed: Decimal
    refunded: Decimal
    affiliate: Decimal
    partner: Decimal
    shipping: Decimal
    paid: Decimal
    payout_type: int

    def __init__(self, pid: str, paid_out_at: int, day: dt.date, m: MerchantCtx):
        self.id = pid
        self.key = paid_out_at
        self.day = day
        self.m = m
        self.url = f"{m.payouts_url}{pid}/"
        self.url_json = orjson.dumps(self.url).decode()
        self.rec = None
        self.dirty = False
        self.sales = self.fee = self.tax = self.held = self.reversed = self.refunded = ZERO
        self.affiliate = self.partner = self.shipping = self.paid = ZERO
        self.payout_type = 0
        self.settled_ids: list[str] = []
        self.held_ids: list[str] = []
        self.released_ids: list[str] = []
        self.held_refunded_ids: list[str] = []
        self.refunded_ids: list[str] = []

    def render(self, now: int) -> tuple[dict, object]:
        return {
            "id": self.id,
            "recipient": self.m.seller_url,
            "status": True,
            "paid_out_at": iso(self.key),
            "currency": "INR",
            "paid_amount": str(self.paid),
            "sales_amount": str(self.sales),
            "fee_amount": str(self.fee),
            "total_tax_amount": str(self.tax),
            "held_amount": str(self.held),
            "reversed_amount": str(self.reversed),
            "refunded_amount": str(self.refunded),
            "affiliate_commission_amount": str(self.affiliate),
            "partner_commission_amount": str(self.partner),
            "payout_type": self.payout_type,
            "resource_uri": self.url,
            "shipping_fee": str(self.shipping),
        }, None

    def is_final(self, now: int) -> bool:
        return self.key <= now

    def relations(self) -> dict:
        """The hidden relations of this payout (payment ids by role)."""
        return {
            "paid_out_at": iso(self.key),
            "settlement_date": self.day.isoformat(),
            "settled": list(self.settled_ids),
            "held": list(self.held_ids),
            "released": list(self.released_ids),
            "held_refunded": list(self.held_refunded_ids),
            "refunded": list(self.refunded_ids),
        }


class ProductModel(Model):
    """A product: moderation, archiving and purchases over time; its covers."""

    __slots__ = (
        "archived_at",
        "base_price",
        "covers",
        "custom_note",
        "description",
        "discount_public",
        "end_date",
        "key",
        "kind_of",
        "limit_quantity",
        "live_at",
        "m",
        "max_price",
        "min_price",
        "purchases",
        "pwyw",
        "requires_shipping",
        "ships_within_days",
        "slug",
        "start_date",
        "timezone",
        "title",
        "url",
        "url_json",
        "variants",
        "venue",
    )
    kind = "products"

    slug: str
    key: int
    m: MerchantCtx
    url: str
    url_json: str
    # set by the generator right after construction (not in __init__)
    title: str
    description: str
    kind_of: str
    variants: Mapping[str, Sequence[str]] | None  # option name → values
    base_price: Decimal
    min_price: Decimal
    max_price: Decimal
    pwyw: bool
    limit_quantity: int | None
    discount_public: bool
    requires_shipping: bool
    ships_within_days: int | None
    start_date: str | None
    end_date: str | None
    venue: str | None
    timezone: str | None
    custom_note: str
    live_at: int | None
    archived_at: int | None

    def __init__(self, slug: str, created: int, m: MerchantCtx):
        self.slug = slug
        self.key = created
        self.m = m
        self.url = f"{m.products_url}{slug}/"
        self.url_json = orjson.dumps(self.url).decode()
        self.rec = None
        self.dirty = False
        self.purchases: list[tuple[int, int]] = []
        self.covers: list[dict] = []

    @property
    def id(self) -> str:
        """Products are addressed by slug."""
        return self.slug

    def status_at(self, now: int) -> int:
        """20 Live, 30 Archived, 33 Pending Moderation."""
        if self.archived_at is not None and self.archived_at <= now:
            return 30
        if self.live_at is not None and self.live_at <= now:
            return 20
        return 33

    def sellable_during(self, start: int, end: int) -> bool:
        """Live for the whole of [start, end)."""
        return (
            self.live_at is not None
            and self.live_at <= start
            and (self.archived_at is None or self.archived_at >= end)
        )

    def render(self, now: int) -> tuple[dict, object]:
        status = self.status_at(now)
        purchased = 0
        for at, qty in self.purchases:
            if at <= now:
                purchased += qty
        return {
            "title": self.title,
            "description": self.description,
            "status": PRODUCT_STATUS_LABELS[status],
            "user": self.m.seller_url,
            "slug": self.slug,
            "shorturl": f"https://imojo.in/{self.slug}",
            "currency": "INR",
            "base_price": str(self.base_price),
            "min_price": str(self.min_price),
            "max_price": str(self.max_price),
            "pay_what_you_want": self.pwyw,
            "limit_quantity": self.limit_quantity,
            "purchased_quantity": purchased,
            "discount_public": self.discount_public,
            "requires_shipping": self.requires_shipping,
            "ships_within_days": self.ships_within_days,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "venue": self.venue,
            "timezone": self.timezone,
            "redirect_url": None,
            "redirect_time": 2000,
            "webhook_url": None,
            "custom_note_success": self.custom_note,
            "is_signing_mandatory": False,
            "created_at": iso(self.key),
            "resource_uri": self.url,
        }, status

    def is_final(self, now: int) -> bool:
        # purchases may arrive at any time: a product stays live in memory (there are few)
        return False


class OrderItem:
    """One line of an order."""

    __slots__ = ("amount", "discount", "product", "quantity", "shipping_charges", "unit_price", "variants")

    def __init__(self, product, unit_price, quantity, shipping_charges, discount, variants):
        self.product = product
        self.unit_price = unit_price
        self.quantity = quantity
        self.shipping_charges = shipping_charges
        self.discount = discount
        self.variants = variants
        amount = unit_price * quantity
        if shipping_charges is not None:
            amount += shipping_charges
        if discount is not None:
            amount -= discount
        self.amount = amount


class OrderModel(Model):
    """An order: buyer, items, and the payment attempts made for it over time."""

    __slots__ = ("amount", "buyer", "id", "items", "items_json", "key", "m", "payments", "times", "title", "url")
    kind = "orders"

    id: str
    key: int
    m: MerchantCtx
    url: str
    # set by the generator right after construction (not in __init__)
    amount: Decimal
    buyer: Buyer
    title: str

    def __init__(self, oid: str, created: int, m: MerchantCtx):
        self.id = oid
        self.key = created
        self.m = m
        self.url = f"{m.orders_url}{oid}/"
        self.rec = None
        self.dirty = False
        self.items: list[OrderItem] = []
        self.payments: list[PaymentModel] = []
        self.times: list[int] = [created]
        self.items_json: str | None = None  # the items never change: serialized once

    def paid_at(self, now: int) -> Decimal:
        """Sum of the amounts of the successful payments visible at ``now``."""
        paid = ZERO
        for p in self.payments:
            if p.key <= now and p.visible_status(now) is True:
                paid += p.amount
        return paid

    def render(self, now: int) -> tuple[dict, object]:
        m = self.m
        nested = []
        paid = ZERO
        for p in self.payments:
            if p.key > now:
                continue
            status = p.visible_status(now)
            if status is True:
                paid += p.amount
            nested.append(
                {
                    "payment_id": p.id,
                    "amount": str(p.amount),
                    "instrument_type": p.instrument,
                    "status": ORDER_PAYMENT_STATUS[status],
                    "resource_uri": f"{m.payments_url}{p.id}/",
                }
            )
        if paid >= self.amount:
            order_status = "Fully Paid"
        elif paid > ZERO:
            order_status = "Partially Paid"
        else:
            order_status = "Pending"
        buyer = self.buyer
        items = self._items()
        return {
            "id": self.id,
            "title": self.title,
            "currency": "INR",
            "created_at": iso(self.key),
            "buyer_email": buyer.email,
            "buyer_name": buyer.name,
            # orders show the bare 10-digit number, payments the +91 form (as in the reference)
            "buyer_phone": buyer.phone[3:],
            "buyer_address": buyer.address,
            "buyer_city": buyer.city,
            "buyer_state": buyer.state,
            "buyer_zip": buyer.zip,
            "buyer_country": "India",
            "amount": str(self.amount),
            "order_status": order_status,
            "payments_uri": f"{m.payments_url}?order_id={self.id}",
            "payments": nested,
            "items": items,
        }, paid > ZERO

    def render_json(self, now: int) -> tuple[bytes, object]:
        """:meth:`render` serialized straight to JSON bytes (the same bytes as orjson makes of
        it; a test holds the two to each other), with the parts that never change (buyer,
        items) serialized once."""
        m = self.m
        open_url = m.payments_url_json_open
        nested = []
        paid = ZERO
        for p in self.payments:
            if p.key > now:
                continue
            status = p.visible_status(now)
            if status is True:
                paid += p.amount
            nested.append(f'{{"payment_id":"{p.id}","amount":"{p.amount}","instrument_type":{js(p.instrument)},'
                          f'"status":{_ORDER_PAYMENT_STATUS_JSON[status]},"resource_uri":{open_url}{p.id}/"}}')
        if paid >= self.amount:
            order_status = "Fully Paid"
        elif paid > ZERO:
            order_status = "Partially Paid"
        else:
            order_status = "Pending"
        items = self.items_json
        if items is None:
            items = self.items_json = orjson.dumps(self._items()).decode()
        text = (
            f'{{"id":{_dumps(self.id)},"title":{js(self.title)},"currency":"INR","created_at":"{iso(self.key)}",'
            f'{self.buyer.order_fields_json()},"buyer_country":"India","amount":"{self.amount}",'
            f'"order_status":"{order_status}","payments_uri":{_dumps(f"{m.payments_url}?order_id={self.id}")},'
            f'"payments":[{",".join(nested)}],"items":{items}}}'
        )
        return text.encode(), paid > ZERO

    def _items(self) -> list[dict]:
        m = self.m
        return [
            {
                "unit_price": str(item.unit_price),
                "quantity": item.quantity,
                "amount": str(item.amount),
                "is_shipping_required": item.product.requires_shipping,
                "seller": m.seller_url,
                "shipping_charge_logic": None if item.shipping_charges is None else "flat",
                "shipping_charges": None if item.shipping_charges is None else str(item.shipping_charges),
                "product": item.product.url,
                "order": self.url,
                "discount": None if item.discount is None else str(item.discount),
                "variants": [{"name": n, "value": v} for n, v in item.variants],
            }
            for item in self.items
        ]

    def is_final(self, now: int) -> bool:
        return all(t <= now for t in self.times)
