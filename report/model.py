"""The report's figures, computed from the marts: one `MerchantReport` per merchant, every total a
`Decimal` (or a count) that stands for one SQL sum over one mart (see docs/report.md, "What each
figure is"). Nothing here formats or draws; `render` does."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .formatting import IST, to_ist
from .marts import Marts, ReportError

ZERO = Decimal("0.00")
DEFAULT_DAYS = 30

#: Ageing buckets of unsettled money: business days from the payment's date to the as-of date
#: (inclusive bounds; None = open). T+3 means days 0–3 are within the settlement window.
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0–3 business days", 0, 3),
    ("4–5 business days", 4, 5),
    ("6–10 business days", 6, 10),
    ("11–20 business days", 11, 20),
    ("over 20 business days", 21, None),
)
UNKNOWN_AGE = "age unknown"

#: Order statuses the orders section lists (everything but "paid"), most urgent first.
ORDER_STATUSES = ("status_mismatch", "overpaid", "partially_paid", "unpaid", "amount_invalid")
ORDER_STATUS_LABELS = {
    "status_mismatch": "Status disagrees with the payments",
    "overpaid": "Overpaid",
    "partially_paid": "Part-paid",
    "unpaid": "Unpaid",
    "amount_invalid": "Amount not a number",
}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
EXCEPTION_LABELS = {
    "orphan_payment": "Payment names a payout that does not exist",
    "failed_payment_in_payout": "Failed or pending payment in a payout",
    "overdue_settlement": "Overdue settlement",
    "late_settlement": "Late settlement",
    "duplicate_payment": "Duplicate payment",
    "payout_residual": "Payout does not add up",
    "payout_payments_missing": "Payout's payments missing",
    "order_status_mismatch": "Order status disagrees with its payments",
    "order_overpaid": "Order overpaid",
    "invalid_amount": "Amount is not a number",
}


def _sum(rows: Iterable[dict[str, Any]], column: str) -> Decimal:
    """SQL's SUM over rows, as the report needs it: NULLs left out, an empty set is zero."""
    total = ZERO
    for r in rows:
        if r[column] is not None:
            total += r[column]
    return total


def _unknown(rows: Iterable[dict[str, Any]], column: str) -> int:
    return sum(1 for r in rows if r[column] is None)


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    defaulted: bool = False  # True when --from/--to were not given

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


@dataclass
class Figure:
    """One total on the page: `key` names the SQL it stands for (docs/report.md)."""

    key: str
    label: str
    value: Decimal | int
    kind: str = "money"  # money | count
    hint: str = ""
    unknown: int = 0  # rows left out of the sum because the value is not a number
    tone: str = ""  # "", "good", "warn", "bad"


@dataclass
class FlowStep:
    key: str
    label: str
    value: Decimal  # signed: what this step adds to the running total
    kind: str  # total | decrease | increase | subtotal | residual


@dataclass
class Flow:
    """The period's payouts from gross sales to paid out, by the working payout identity."""

    steps: list[FlowStep]
    payouts_included: int
    excluded: list[dict[str, Any]]  # payouts with a figure that is not a number
    unbalanced: list[dict[str, Any]]  # payouts whose paid amount differs from their figures
    steps_total: Decimal  # sales − fees − … as the page adds it up
    expected: Decimal  # Σ expected_paid_amount from the mart
    residual: Decimal
    paid: Decimal
    shipping_fee: Decimal

    @property
    def steps_add_up(self) -> bool:
        return self.steps_total == self.expected

    @property
    def paid_adds_up(self) -> bool:
        return self.expected + self.residual == self.paid

    @property
    def balanced(self) -> bool:
        return self.steps_add_up and self.paid_adds_up and self.residual == ZERO and not self.excluded


@dataclass
class DayRow:
    day: date
    is_business_day: bool | None
    holiday_name: str | None
    expected: Decimal
    expected_payments: int
    paid: Decimal
    payouts: int

    @property
    def difference(self) -> Decimal:
        return self.paid - self.expected


@dataclass
class Bucket:
    label: str
    awaiting_count: int = 0
    awaiting_net: Decimal = ZERO
    overdue_count: int = 0
    overdue_net: Decimal = ZERO
    gross: Decimal = ZERO

    @property
    def count(self) -> int:
        return self.awaiting_count + self.overdue_count

    @property
    def net(self) -> Decimal:
        return self.awaiting_net + self.overdue_net


@dataclass
class Group:
    """Rows of one kind (an exception type, an order status) with their totals."""

    key: str
    label: str
    rows: list[dict[str, Any]]
    amount: Decimal
    unknown: int = 0
    severity: str = ""
    extra: dict[str, Decimal] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass
class MerchantReport:
    merchant: str
    freshness: dict[str, Any]
    has_data: bool
    tiles: list[Figure]
    sales_made: Decimal
    flow: Flow
    payouts: list[dict[str, Any]]
    payout_figures: list[Figure]
    days: list[DayRow]
    daily_figures: list[Figure]
    buckets: list[Bucket]
    unsettled: list[dict[str, Any]]  # unsettled payments made in the period, with age and bucket
    unsettled_before: list[dict[str, Any]]  # unsettled payments made before the period
    unsettled_figures: list[Figure]
    exception_groups: list[Group]
    exceptions_count: int
    exceptions_amount: Decimal
    exceptions_unknown: int
    order_groups: list[Group]
    orders_in_period: int
    # itemized rows for the CSV downloads
    payments: list[dict[str, Any]]
    payout_payments: list[dict[str, Any]]

    @property
    def latest_at(self) -> datetime | None:
        times = [self.freshness.get(k) for k in ("latest_payment_at", "latest_payout_at", "latest_order_at")]
        known = [t for t in times if t is not None]
        return max(known, key=lambda t: to_ist(t)) if known else None


@dataclass
class Report:
    generated_at: datetime
    period: Period
    as_of_date: date | None
    merchants: list[MerchantReport]
    warehouse_merchants: list[str]
    source: str  # where the data came from, for the page's header

    @property
    def empty(self) -> bool:
        return not self.warehouse_merchants

    @property
    def latest_at(self) -> datetime | None:
        times = [m.latest_at for m in self.merchants if m.latest_at is not None]
        return max(times, key=lambda t: to_ist(t)) if times else None


# -- building ---------------------------------------------------------------------------------


def choose_merchants(known: list[str], wanted: list[str] | None) -> list[str]:
    if not wanted:
        return list(known)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        have = ", ".join(known) if known else "none (the marts are empty: run `make sync` first)"
        raise ReportError(f"unknown merchant(s) {', '.join(unknown)}; merchants in the warehouse: {have}")
    return list(dict.fromkeys(wanted))


def choose_period(start: date | None, end: date | None, as_of: date | None, today: date) -> Period:
    if start and end and start > end:
        raise ReportError(f"--from {start.isoformat()} is after --to {end.isoformat()}: the period would be empty")
    defaulted = start is None and end is None
    end = end or (as_of if as_of and (start is None or as_of >= start) else None) or (
        start + timedelta(days=DEFAULT_DAYS - 1) if start else today)
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    return Period(start, end, defaulted)


def build_report(marts: Marts, *, merchants: list[str] | None = None, start: date | None = None,
                 end: date | None = None, source: str = "", now: datetime | None = None) -> Report:
    """Read the marts and compute every figure of the report."""
    marts.require()
    now = now or datetime.now(IST)
    if start and end and start > end:
        choose_period(start, end, None, now.date())  # raises before any query
    known = marts.merchants()
    chosen = choose_merchants(known, merchants)
    freshness = marts.freshness(chosen) if chosen else {}
    as_of_dates = [f["as_of_date"] for f in freshness.values() if f.get("as_of_date")]
    as_of = max(as_of_dates) if as_of_dates else None
    if as_of is None and freshness:
        # no payments (payments:read not granted): the newest day the marts summarise or hold
        candidates = [f.get("last_summary_date") for f in freshness.values()]
        candidates += [to_ist(f[k]).date() for f in freshness.values()
                       for k in ("latest_payout_at", "latest_order_at") if f.get(k)]
        as_of = max((c for c in candidates if c), default=None)
    period = choose_period(start, end, as_of, now.astimezone(IST).date())
    report = Report(now, period, as_of, [], known, source)
    if not chosen:
        return report

    payments = marts.payments(chosen, period.start, period.end)
    payouts = marts.payouts(chosen, period.start, period.end)
    payout_payments = marts.payout_payments(chosen, period.start, period.end)
    daily = marts.daily(chosen, period.start, period.end)
    held = marts.held_at(chosen, period.end)
    exceptions = marts.exceptions(chosen, period.start, period.end)
    orders = marts.orders(chosen, period.start, period.end)
    first_day = min([period.start] + [p["payment_date"] for p in payments if p["payment_date"]])
    last_day = max([period.end] + [f["as_of_date"] for f in freshness.values() if f.get("as_of_date")])
    calendar = marts.calendar(first_day, last_day)

    def of(rows: list[dict[str, Any]], merchant: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["merchant"] == merchant]

    for merchant in chosen:
        report.merchants.append(_merchant_report(
            merchant, period, freshness.get(merchant, {"merchant": merchant}), calendar,
            of(payments, merchant), of(payouts, merchant), of(payout_payments, merchant), of(daily, merchant),
            held.get(merchant), of(exceptions, merchant), of(orders, merchant),
        ))
    return report


def _merchant_report(merchant: str, period: Period, freshness: dict[str, Any], calendar: dict[date, dict[str, Any]],
                     payments: list[dict[str, Any]], payouts: list[dict[str, Any]],
                     payout_payments: list[dict[str, Any]], daily: list[dict[str, Any]],
                     held: dict[str, Any] | None, exceptions: list[dict[str, Any]],
                     orders: list[dict[str, Any]]) -> MerchantReport:
    in_period = [p for p in payments if p["payment_date"] and period.start <= p["payment_date"] <= period.end]
    successful = [p for p in in_period if p["status"] == "successful"]
    awaiting = [p for p in successful if p["settlement_state"] == "awaiting_payout"]
    overdue = [p for p in successful if p["settlement_state"] == "overdue"]
    before = [p for p in payments if p["status"] == "successful" and p["payment_date"]
              and p["payment_date"] < period.start and p["settlement_state"] in ("awaiting_payout", "overdue")]

    exceptions_amount = _sum(exceptions, "amount_at_stake")
    exceptions_unknown = _unknown(exceptions, "amount_at_stake")
    held_amount = held["held_amount"] if held and held["held_amount"] is not None else ZERO
    tiles = [
        Figure("sales", "Sales", _sum(successful, "amount"), hint=f"{len(successful):,} successful payments",
               unknown=_unknown(successful, "amount")),
        Figure("fees", "Fees", _sum(successful, "fees"), unknown=_unknown(successful, "fees")),
        Figure("gst", "GST on fees", _sum(successful, "taxes"), unknown=_unknown(successful, "taxes")),
        Figure("refunds", "Refunds", _sum(payouts, "refunded_amount"), hint="deducted in the period's payouts",
               unknown=_unknown(payouts, "refunded_amount")),
        Figure("held", "Held", held_amount,
               hint=f"under review at the end of {held['summary_date']:%d %b}" if held else "nothing held"),
        Figure("paid_out", "Paid out", _sum(payouts, "paid_amount"), hint=f"{len(payouts):,} payouts",
               unknown=_unknown(payouts, "paid_amount"), tone="good"),
        Figure("awaiting", "Awaiting payout", _sum(awaiting, "net_amount"),
               hint=f"{len(awaiting):,} payments, net of fees and GST", unknown=_unknown(awaiting, "net_amount")),
        Figure("overdue", "Overdue", _sum(overdue, "net_amount"), hint=f"{len(overdue):,} payments past due",
               unknown=_unknown(overdue, "net_amount"), tone="bad" if overdue else "good"),
        Figure("exceptions_count", "Exceptions", len(exceptions), kind="count",
               hint="need a human" if exceptions else "nothing to look at", tone="bad" if exceptions else "good"),
        Figure("exceptions_amount", "Amount at stake", exceptions_amount, unknown=exceptions_unknown,
               tone="bad" if exceptions else "good"),
    ]

    flow = _flow(payouts)
    payouts_sorted = sorted(payouts, key=lambda p: (p["status"] == "balanced", -(p["paid_out_at"].timestamp()
                                                    if p["paid_out_at"] else 0), p["payout_id"]))
    unbalanced = [p for p in payouts if p["status"] != "balanced"]
    payout_figures = [
        Figure("payouts_count", "Payouts", len(payouts), kind="count"),
        Figure("payouts_paid", "Paid out", _sum(payouts, "paid_amount"), unknown=_unknown(payouts, "paid_amount")),
        Figure("payouts_unbalanced", "Unbalanced", len(unbalanced), kind="count",
               tone="bad" if unbalanced else "good"),
        Figure("payouts_residual", "Total residual", _sum(payouts, "residual"), unknown=_unknown(payouts, "residual"),
               tone="bad" if any(p["residual"] for p in payouts) else "good"),
    ]

    days = _days(period, calendar, payments, daily)
    daily_figures = [
        Figure("daily_expected", "Expected (T+3)", sum((d.expected for d in days), ZERO),
               hint="net of successful payments due in a payout in the period"),
        Figure("daily_paid", "Paid out", sum((d.paid for d in days), ZERO)),
    ]

    unsettled = [dict(p) for p in awaiting + overdue]
    before_rows = [dict(p) for p in before]
    buckets = {label: Bucket(label) for label, _, _ in AGE_BUCKETS}
    for p in unsettled + before_rows:
        p["age_business_days"] = _age(p, calendar)
        p["age_bucket"] = _bucket(p["age_business_days"])
    for p in unsettled:
        bucket = buckets.setdefault(p["age_bucket"], Bucket(p["age_bucket"]))
        net = p["net_amount"] if p["net_amount"] is not None else ZERO
        if p["settlement_state"] == "overdue":
            bucket.overdue_count += 1
            bucket.overdue_net += net
        else:
            bucket.awaiting_count += 1
            bucket.awaiting_net += net
        bucket.gross += p["amount"] if p["amount"] is not None else ZERO
    unsettled.sort(key=lambda p: (p["settlement_state"] != "overdue", -(p["age_business_days"] or 0), p["created_at"]))
    unsettled_figures = [
        Figure("unsettled_count", "Unsettled payments", len(unsettled), kind="count"),
        Figure("unsettled_net", "Unsettled (net)", _sum(unsettled, "net_amount"), unknown=_unknown(unsettled, "net_amount")),
        Figure("unsettled_gross", "Unsettled (gross)", _sum(unsettled, "amount"), unknown=_unknown(unsettled, "amount")),
        Figure("unsettled_before_count", "Made before the period", len(before_rows), kind="count"),
        Figure("unsettled_before_net", "… their net", _sum(before_rows, "net_amount"),
               unknown=_unknown(before_rows, "net_amount"), tone="bad" if before_rows else ""),
    ]

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in exceptions:
        groups[e["exception_type"]].append(e)
    exception_groups = []
    for kind, rows in groups.items():
        rows.sort(key=lambda e: (SEVERITY_ORDER.get(e["severity"], 9), -(e["amount_at_stake"] or 0), e["exception_id"]))
        worst = min((r["severity"] for r in rows), key=lambda s: SEVERITY_ORDER.get(s, 9))
        exception_groups.append(Group(kind, EXCEPTION_LABELS.get(kind, kind.replace("_", " ")), rows,
                                      _sum(rows, "amount_at_stake"), _unknown(rows, "amount_at_stake"), worst))
    exception_groups.sort(key=lambda g: (SEVERITY_ORDER.get(g.severity, 9), -g.amount, g.key))

    order_groups = []
    statuses: tuple[str, ...] = ORDER_STATUSES + tuple(sorted({o["status"] for o in orders} - set(ORDER_STATUSES) - {"paid"}))
    for status in statuses:
        rows = [o for o in orders if o["status"] == status]
        if rows:
            order_groups.append(Group(status, ORDER_STATUS_LABELS.get(status, status), rows,
                                      _sum(rows, "order_amount"), _unknown(rows, "order_amount"),
                                      extra={"due": _sum(rows, "balance_due"),
                                             "received": _sum(rows, "successful_amount")}))

    has_data = bool(in_period or payouts or orders or exceptions or unsettled or before_rows
                    or any(d.expected or d.paid for d in days))
    return MerchantReport(
        merchant=merchant, freshness=freshness, has_data=has_data, tiles=tiles,
        sales_made=_sum(successful, "amount"), flow=flow, payouts=payouts_sorted, payout_figures=payout_figures,
        days=days, daily_figures=daily_figures, buckets=list(buckets.values()), unsettled=unsettled,
        unsettled_before=before_rows, unsettled_figures=unsettled_figures, exception_groups=exception_groups,
        exceptions_count=len(exceptions), exceptions_amount=exceptions_amount,
        exceptions_unknown=exceptions_unknown, order_groups=order_groups, orders_in_period=len(orders),
        payments=in_period, payout_payments=payout_payments,
    )


FLOW_TERMS = (
    # key, label, column, sign
    ("flow_sales", "Gross sales", "sales_amount", 1),
    ("flow_fees", "Fees", "fee_amount", -1),
    ("flow_gst", "GST on fees", "total_tax_amount", -1),
    ("flow_held", "Held for review", "held_amount", -1),
    ("flow_released", "Released from hold", "reversed_amount", 1),
    ("flow_refunded", "Refunded", "refunded_amount", -1),
    ("flow_affiliate", "Affiliate commission", "affiliate_commission_amount", -1),
    ("flow_partner", "Partner commission", "partner_commission_amount", -1),
)


def _flow(payouts: list[dict[str, Any]]) -> Flow:
    # a payout with a figure that is not a number cannot be placed in the flow: it is named instead
    known = [p for p in payouts if p["expected_paid_amount"] is not None and p["paid_amount"] is not None]
    excluded = [p for p in payouts if p not in known]
    steps = []
    running = ZERO
    for key, label, column, sign in FLOW_TERMS:
        value = sign * _sum(known, column)
        running += value
        steps.append(FlowStep(key, label, value, "total" if key == "flow_sales" else
                              ("increase" if sign > 0 else "decrease")))
    expected = _sum(known, "expected_paid_amount")
    residual = _sum(known, "residual")
    paid = _sum(known, "paid_amount")
    steps.append(FlowStep("flow_expected", "Expected paid out", expected, "subtotal"))
    steps.append(FlowStep("flow_residual", "Unexplained (residual)", residual, "residual"))
    steps.append(FlowStep("flow_paid", "Paid out", paid, "total"))
    unbalanced = [p for p in known if p["residual"] != ZERO]
    return Flow(steps, len(known), excluded, unbalanced, running, expected, residual, paid,
                _sum(known, "shipping_fee"))


def _days(period: Period, calendar: dict[date, dict[str, Any]], payments: list[dict[str, Any]],
          daily: list[dict[str, Any]]) -> list[DayRow]:
    expected: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for p in payments:
        if p["status"] == "successful" and p["expected_payout_date"]:
            expected[p["expected_payout_date"]].append(p)
    summary = {d["summary_date"]: d for d in daily}
    rows = []
    for day in period.dates():
        cal = calendar.get(day)
        s = summary.get(day)
        due = expected.get(day, [])
        rows.append(DayRow(
            day=day,
            is_business_day=cal["is_business_day"] if cal else (s["is_business_day"] if s else None),
            holiday_name=cal["holiday_name"] if cal else None,
            expected=_sum(due, "net_amount"),
            expected_payments=len(due),
            paid=s["paid_out_amount"] if s and s["paid_out_amount"] is not None else ZERO,
            payouts=s["payouts_count"] if s else 0,
        ))
    return rows


def _age(payment: dict[str, Any], calendar: dict[date, dict[str, Any]]) -> int | None:
    """Business days from the payment's date to the as-of date (the settlement calendar's count)."""
    paid_day = calendar.get(payment["payment_date"])
    as_of = calendar.get(payment["as_of_date"])
    if not paid_day or not as_of:
        return None
    return as_of["business_day_number"] - paid_day["business_day_number"]


def _bucket(age: int | None) -> str:
    if age is None:
        return UNKNOWN_AGE
    for label, low, high in AGE_BUCKETS:
        if age >= low and (high is None or age <= high):
            return label
    return AGE_BUCKETS[0][0]  # an as-of date before the payment's: not yet due
