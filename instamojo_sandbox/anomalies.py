"""Anomalies: data defects for reconciliation and quality tests. Each is off until injected and
each injection is recorded (kind, merchant, ids, amounts) for the ground truth.

Kinds (parameters in brackets, all optional):

- ``orphan_payment`` [amount, days_ago]: a new successful payment whose ``payout`` refers to a
  payout that does not exist.
- ``unbalanced_payout`` [payout_id, delta]: a payout whose ``paid_amount`` is off by ``delta``
  (default ₹100.00), so its figures break the identity by exactly that residual.
- ``short_paid_order`` [order_id]: a "Partially Paid" order shown as "Fully Paid" although its
  successful payments fall short of its amount.
- ``duplicate_across_pages`` [endpoint, page, page_size]: the last record of page ``page``
  (default 1) of the unfiltered list, in the current sort order and at ``page_size`` (default:
  the configured page size; give the ``limit`` a client asks for), is served again as the
  first record of the next page (count grows by one, as on a live API that shifted under a
  reader).
- ``unknown_field`` [endpoint, field, value, count]: ``count`` records (default 1, newest
  first) gain a field the reference does not know (default ``settlement_reference``).
- ``non_numeric_amount`` [endpoint, id, field, value]: a money field (default ``amount`` of the
  newest successful payment) is served as a non-number (default ``"N/A"``).

Anomalies last for the life of the sandbox (start a fresh one for a clean dataset); they
survive clock advances.
"""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import orjson

from .rules import fmt_money, money
from .store import Store
from .timeutil import US, iso

ANOMALY_KINDS = (
    "orphan_payment",
    "unbalanced_payout",
    "short_paid_order",
    "duplicate_across_pages",
    "unknown_field",
    "non_numeric_amount",
)


class AnomalyError(ValueError):
    """An anomaly that cannot be injected (unknown kind, nothing eligible, bad parameter)."""


class Anomalies:
    """Injects anomalies into a store and remembers them."""

    def __init__(self, store: Store, page_size_getter, sort_order_getter):
        self.store = store
        self._page_size = page_size_getter
        self._sort_order = sort_order_getter
        self._lock = threading.Lock()
        self._injected: list[dict] = []

    def list(self, merchant: str | None = None) -> list[dict]:
        """Every injected anomaly (optionally of one merchant), oldest first."""
        with self._lock:
            return [dict(a) for a in self._injected if merchant is None or a["merchant"] == merchant]

    def inject(self, kind: str, merchant: str | None = None, **params) -> dict:
        """Inject one anomaly; returns its ground-truth record."""
        if kind not in ANOMALY_KINDS:
            raise AnomalyError(f"unknown anomaly {kind!r}; choose one of {list(ANOMALY_KINDS)}")
        store = self.store
        with store.lock:
            state = store.state(merchant)
            rng = random.Random(f"{store.config.seed}:anomaly:{len(self._injected)}:{kind}")
            record = getattr(self, f"_{kind}")(state, rng, **params)
            record = {"kind": kind, "merchant": state.username, "injected_at": iso(store.now), **record}
        with self._lock:
            self._injected.append(record)
        return dict(record)

    # Kinds --------------------------------------------------------------------------------
    def _orphan_payment(self, state, rng, amount=None, days_ago: float = 6) -> dict:
        store = self.store
        value = money(amount) if amount is not None else money(Decimal(rng.randrange(500, 50000)))
        created = store.now - int(float(days_ago) * 86400 * US) - rng.randrange(3600 * US)
        paid_out = min(store.now, created + 3 * 86400 * US)
        model = state.gen.orphan_payment(created, value, paid_out, rng)
        store.insert_record(state, model)
        return {"payment_id": model.id, "payout_id": model.payout.id, "amount": fmt_money(value)}

    def _unbalanced_payout(self, state, rng, payout_id: str | None = None, delta="100.00") -> dict:
        coll = state.colls["payouts"]
        if payout_id is None:
            if not coll.records:
                raise AnomalyError(f"merchant {state.username!r} has no payout yet")
            payout_id = coll.records[-1].id
        rec = coll.by_id.get(payout_id)
        if rec is None:
            raise AnomalyError(f"no payout {payout_id!r} for merchant {state.username!r}")
        shift = money(delta)
        current = orjson.loads(rec.json)
        original = Decimal(current["paid_amount"])
        self.store.patch(state, "payouts", payout_id, {"paid_amount": fmt_money(original + shift)})
        return {"payout_id": payout_id, "field": "paid_amount", "original": fmt_money(original),
                "value": fmt_money(original + shift), "residual": fmt_money(shift)}

    def _short_paid_order(self, state, rng, order_id: str | None = None) -> dict:
        coll = state.colls["orders"]
        candidates = [coll.by_id[order_id]] if order_id else reversed(coll.records)
        for rec in candidates:
            if rec is None:
                break
            data = orjson.loads(rec.json)
            if data["order_status"] == "Partially Paid" and rec.id not in coll.patches:
                paid = sum((Decimal(p["amount"]) for p in data["payments"] if p["status"] == "Success"),
                           Decimal("0.00"))
                self.store.patch(state, "orders", rec.id, {"order_status": "Fully Paid"})
                amount = Decimal(data["amount"])
                return {"order_id": rec.id, "amount": fmt_money(amount), "paid": fmt_money(paid),
                        "shortfall": fmt_money(amount - paid)}
        raise AnomalyError(f"merchant {state.username!r} has no 'Partially Paid' order to mislabel"
                           + (f" (order {order_id!r})" if order_id else ""))

    def _duplicate_across_pages(self, state, rng, endpoint: str = "payments", page: int = 1,
                                page_size: int | None = None) -> dict:
        coll = self._collection(state, endpoint)
        size = int(page_size) if page_size else self._page_size()
        served = coll.served((), self._sort_order())
        position = int(page) * size - 1
        if position + 1 >= len(served):
            raise AnomalyError(f"{endpoint} of {state.username!r} has {len(served)} records: too few for a "
                               f"record to straddle page {page} and {int(page) + 1} at page size {size}")
        rec = served[position]
        with self.store.lock:
            coll.duplicates.append(rec.id)
            coll.version += 1
        return {"endpoint": endpoint, "id": rec.id, "pages": [int(page), int(page) + 1],
                "page_size": size, "sort_order": self._sort_order()}

    def _unknown_field(self, state, rng, endpoint: str = "payments", field: str = "settlement_reference",
                       value=None, count: int = 1) -> dict:
        coll = self._collection(state, endpoint)
        ids = [r.id for r in reversed(coll.records)][: int(count)]
        if not ids:
            raise AnomalyError(f"{endpoint} of {state.username!r} is empty")
        if value is None:
            value = f"SR-{rng.getrandbits(48):012X}"
        for rid in ids:
            self.store.patch(state, endpoint, rid, {field: value})
        return {"endpoint": endpoint, "field": field, "value": value, "ids": ids}

    def _non_numeric_amount(self, state, rng, endpoint: str = "payments", id: str | None = None,
                            field: str | None = None, value: str = "N/A") -> dict:
        coll = self._collection(state, endpoint)
        field = field or {"payments": "amount", "payouts": "paid_amount", "products": "base_price",
                          "orders": "amount"}[endpoint]
        rid = id
        if rid is None:
            for rec in reversed(coll.records):
                data = orjson.loads(rec.json)
                if endpoint != "payments" or data["status"] is True:
                    rid = rec.id
                    break
        if rid is None or rid not in coll.by_id:
            raise AnomalyError(f"no eligible {endpoint} record for merchant {state.username!r}")
        before = self.store.patch(state, endpoint, rid, {field: value})
        return {"endpoint": endpoint, "id": rid, "field": field, "original": before.get(field), "value": value}

    @staticmethod
    def _collection(state, endpoint: str):
        coll = state.colls.get(endpoint)
        if coll is None:
            raise AnomalyError(f"unknown endpoint {endpoint!r}; choose one of {sorted(state.colls)}")
        return coll
