"""The mart tables this package publishes in the marts dataset (`instamojo`): their grain, key,
column types and descriptions.

This is the executable form of docs/marts.md: the build creates each table from this declaration
(so money is DECIMAL(18,2) on both databases whatever the SQL computed), writes the descriptions as
table and column comments, and the integrity queries check one row per `key`.
"""

from __future__ import annotations

from dataclasses import dataclass

MONEY = "DECIMAL(18,2)"


@dataclass(frozen=True)
class MartColumn:
    name: str
    sql_type: str
    description: str


@dataclass(frozen=True)
class Mart:
    """A published table: `model` is the SQL (or Python) model whose rows it holds."""

    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[MartColumn, ...]
    description: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def create_table_sql(self, schema: str) -> str:
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return f"CREATE TABLE {schema}.{self.name} (\n  {cols}\n)"


def _c(name: str, sql_type: str, description: str) -> MartColumn:
    return MartColumn(name, sql_type, description)


_MERCHANT = _c("merchant", "TEXT", "The merchant's configured name (the key in .dlt/config.toml).")

PAYMENTS_RECONCILED = Mart(
    name="payments_reconciled",
    grain="one row per payment",
    key=("merchant", "payment_id"),
    description="Every payment with its order, its payout and where it stands in settlement.",
    columns=(
        _MERCHANT,
        _c("payment_id", "TEXT", "The payment's id (MOJO…)."),
        _c("order_id", "TEXT", "The order whose nested payments list this payment; NULL if none (or no orders synced). If several orders list it, the smallest id (and a duplicate_payment exception)."),
        _c("payout_id", "TEXT", "The payout the API says paid this payment out; NULL until paid out."),
        _c("payout_found", "BOOLEAN", "payout_id is among the merchant's synced payouts (false for an orphan payment; NULL when payout_id is NULL)."),
        _c("status", "TEXT", "successful (API status true), failed (false) or pending (null)."),
        _c("currency", "TEXT", "Currency (INR)."),
        _c("amount", MONEY, "Payment amount; NULL if the API sent a non-number (see invalid_amount)."),
        _c("fees", MONEY, "Instamojo's fees for the payment."),
        _c("taxes", MONEY, "GST on the fees (the API's total_taxes)."),
        _c("net_amount", MONEY, "amount − fees − taxes: what the merchant should receive."),
        _c("created_at", "TIMESTAMPTZ", "When the payment was made (UTC in storage)."),
        _c("payment_date", "DATE", "created_at's date in Asia/Kolkata: the day settlement counts from."),
        _c("expected_payout_date", "DATE", "The 3rd business day strictly after payment_date (Mon–Fri, not an Indian national holiday); NULL unless successful."),
        _c("overdue_after_date", "DATE", "expected_payout_date plus the overdue grace in business days: with no payout by the end of this day the payment is overdue; NULL unless successful."),
        _c("paid_out_at", "TIMESTAMPTZ", "When its payout was paid out; NULL if not paid out or the payout is not synced."),
        _c("paid_out_date", "DATE", "paid_out_at's date in Asia/Kolkata."),
        _c("settlement_state", "TEXT", "settled (the API links a payout), awaiting_payout, overdue (successful, no payout, past overdue_after_date at as_of_date), failed, pending."),
        _c("business_days_late", "INTEGER", "Settled: business days from expected_payout_date to paid_out_date (negative = early). Awaiting/overdue: business days past expected_payout_date at as_of_date (0 if not yet due). NULL for failed/pending or unknown dates."),
        _c("as_of_date", "DATE", "The date (Asia/Kolkata) overdue was judged at: transforms.as_of if a date-time, else the merchant's latest sync (or latest activity)."),
    ),
)

PAYOUT_RECONCILIATION = Mart(
    name="payout_reconciliation",
    grain="one row per payout",
    key=("merchant", "payout_id"),
    description="Every payout's figures against its linked payments and the working payout identity.",
    columns=(
        _MERCHANT,
        _c("payout_id", "TEXT", "The payout's id."),
        _c("payout_status", "BOOLEAN", "The API's payout status."),
        _c("payout_type", "BIGINT", "The API's payout_type."),
        _c("currency", "TEXT", "Currency (INR)."),
        _c("paid_out_at", "TIMESTAMPTZ", "When it was paid out (UTC)."),
        _c("paid_out_date", "DATE", "paid_out_at's date in Asia/Kolkata."),
        _c("paid_amount", MONEY, "What the merchant received."),
        _c("sales_amount", MONEY, "Gross sales settled by this payout."),
        _c("fee_amount", MONEY, "Fees deducted."),
        _c("total_tax_amount", MONEY, "GST on the fees deducted."),
        _c("held_amount", MONEY, "Net of sales under review, withheld from this payout."),
        _c("reversed_amount", MONEY, "Earlier held amounts released (or refunded) in this payout."),
        _c("refunded_amount", MONEY, "Refunds deducted (full payment amounts)."),
        _c("affiliate_commission_amount", MONEY, "Affiliate commission deducted."),
        _c("partner_commission_amount", MONEY, "Partner commission deducted."),
        _c("shipping_fee", MONEY, "Shipping fee as reported; outside the identity (its role is not published)."),
        _c("linked_payments_count", "BIGINT", "Payments (any status) whose payout_id is this payout."),
        _c("linked_unsuccessful_count", "BIGINT", "Of those, failed or pending ones (each a failed_payment_in_payout exception)."),
        _c("linked_amount", MONEY, "Sum of the linked successful payments' amounts (NULL if one is not a number)."),
        _c("linked_fees", MONEY, "Sum of their fees."),
        _c("linked_taxes", MONEY, "Sum of their taxes."),
        _c("linked_net_amount", MONEY, "Sum of their net amounts."),
        _c("expected_paid_amount", MONEY, "sales − fee − tax − held + reversed − refunded − affiliate − partner (working hypothesis, DESIGN.md); NULL if a figure is not a number."),
        _c("residual", MONEY, "paid_amount − expected_paid_amount."),
        _c("sales_difference", MONEY, "sales_amount − linked_amount."),
        _c("payments_synced", "BOOLEAN", "The merchant has payments in the warehouse; when false the payment checks are skipped."),
        _c("status", "TEXT", "residual (|residual| > tolerance), no_payments_linked (no successful payment links it but sales ≠ 0), payments_missing (|sales_difference| > tolerance), amount_invalid (a figure needed is not a number), else balanced."),
    ),
)

ORDER_RECONCILIATION = Mart(
    name="order_reconciliation",
    grain="one row per order",
    key=("merchant", "order_id"),
    description="Every order's amount against its successful payments, and the API's order status.",
    columns=(
        _MERCHANT,
        _c("order_id", "TEXT", "The order's id."),
        _c("title", "TEXT", "The order's title."),
        _c("currency", "TEXT", "Currency (INR)."),
        _c("created_at", "TIMESTAMPTZ", "When the order was created (UTC)."),
        _c("order_amount", MONEY, "The order's amount."),
        _c("api_order_status", "TEXT", "The API's order_status (Pending, Partially Paid, Fully Paid)."),
        _c("payments_count", "BIGINT", "Payments nested in the order (any status)."),
        _c("successful_payments_count", "BIGINT", "Nested payments with status Success."),
        _c("successful_amount", MONEY, "Their sum (NULL if one is not a number)."),
        _c("balance_due", MONEY, "order_amount − successful_amount (negative = overpaid)."),
        _c("payments_status", "TEXT", "What the payments say: paid (|balance_due| ≤ tolerance), unpaid (no successful amount), partially_paid, overpaid; NULL if an amount is not a number."),
        _c("status", "TEXT", "payments_status, or status_mismatch when the API's status disagrees (Fully Paid ↔ paid/overpaid, Partially Paid ↔ partially_paid, Pending ↔ unpaid), or amount_invalid."),
    ),
)

RECONCILIATION_EXCEPTIONS = Mart(
    name="reconciliation_exceptions",
    grain="one row per thing that needs a human",
    key=("merchant", "exception_id"),
    description="Everything reconciliation could not explain, one row each, with what is at stake.",
    columns=(
        _MERCHANT,
        _c("exception_id", "TEXT", "Stable id: <exception_type>:<entity_id>[:<detail>] (unique per merchant)."),
        _c("exception_type", "TEXT", "One of the types in docs/marts.md (orphan_payment, payout_residual, …)."),
        _c("severity", "TEXT", "high (money may be missing or wrong), medium (data disagrees, money likely fine), low (information)."),
        _c("entity_type", "TEXT", "payment, payout or order."),
        _c("entity_id", "TEXT", "The id of that payment, payout or order."),
        _c("related_id", "TEXT", "The other entity involved (e.g. the payout an orphan payment names), if any."),
        _c("amount_at_stake", MONEY, "The money concerned, never negative (the sign is in the explanation); NULL when not a number."),
        _c("occurred_at", "TIMESTAMPTZ", "The entity's time: payment/order created_at, payout paid_out_at."),
        _c("explanation", "TEXT", "One line saying what is wrong, with the figures."),
    ),
)

DAILY_SETTLEMENT_SUMMARY = Mart(
    name="daily_settlement_summary",
    grain="one row per merchant and day (Asia/Kolkata)",
    key=("merchant", "summary_date"),
    description="Each merchant's successful payments, payouts and money awaiting payout, day by day.",
    columns=(
        _MERCHANT,
        _c("summary_date", "DATE", "The day in Asia/Kolkata; every day from the merchant's first payment or payout to its last activity or as_of_date."),
        _c("is_business_day", "BOOLEAN", "Mon–Fri and not an Indian national holiday."),
        _c("successful_payments_count", "BIGINT", "Successful payments made that day."),
        _c("gross_amount", MONEY, "Their amounts."),
        _c("fees", MONEY, "Their fees."),
        _c("taxes", MONEY, "Their taxes."),
        _c("net_amount", MONEY, "Their net amounts."),
        _c("payouts_count", "BIGINT", "Payouts paid out that day."),
        _c("paid_out_amount", MONEY, "Their paid_amount: money that reached the merchant that day."),
        _c("awaiting_payout_amount", MONEY, "At the day's end: net of successful payments made so far whose payout had not been paid out (payments the API links to an unsynced payout are left out: their date is unknown)."),
        _c("held_amount", MONEY, "At the day's end: money held in payouts so far and not yet released or refunded (cumulative held − reversed)."),
    ),
)

SETTLEMENT_CALENDAR = Mart(
    name="settlement_calendar",
    grain="one row per date",
    key=("calendar_date",),
    description="The business-day calendar the settlement rule uses (from the holidays package).",
    columns=(
        _c("calendar_date", "DATE", "The date."),
        _c("is_business_day", "BOOLEAN", "Mon–Fri and not a holiday."),
        _c("holiday_name", "TEXT", "The holiday's name, if it is one (weekends are not named)."),
        _c("business_day_number", "INTEGER", "Business days on or before this date since the calendar's first date; subtract two to count business days between dates."),
        _c("expected_payout_date", "DATE", "For a payment made on this date: the 3rd business day strictly after it."),
        _c("overdue_after_date", "DATE", "For a payment made on this date: expected_payout_date plus the overdue grace (business days)."),
    ),
)

@dataclass(frozen=True)
class ExceptionType:
    """A kind of row in reconciliation_exceptions."""

    name: str
    severity: str
    entity_type: str
    amount_at_stake: str
    meaning: str


EXCEPTION_TYPES: dict[str, ExceptionType] = {
    e.name: e
    for e in (
        ExceptionType("orphan_payment", "high", "payment", "the payment's amount",
                      "The payment names a payout that is not among the merchant's payouts."),
        ExceptionType("failed_payment_in_payout", "high", "payment", "the payment's amount",
                      "A failed or pending payment is linked to a payout."),
        ExceptionType("overdue_settlement", "high", "payment", "the payment's amount",
                      "A successful payment has no payout after its expected payout date plus the grace."),
        ExceptionType("late_settlement", "low", "payment", "the payment's amount",
                      "A payment was paid out after its expected payout date plus the grace."),
        ExceptionType("duplicate_payment", "medium", "payment or order", "the payment's amount",
                      "A payment appears more than once in the raw payments, or is listed by more than one order."),
        ExceptionType("payout_residual", "high", "payout", "abs(residual)",
                      "A payout's paid_amount differs from what its own figures give under the working identity."),
        ExceptionType("payout_payments_missing", "medium", "payout", "abs(sales_difference)",
                      "A payout's sales_amount differs from the sum of the successful payments linked to it."),
        ExceptionType("order_status_mismatch", "high or medium", "order", "abs(balance_due)",
                      "The API's order status disagrees with the order's successful payments."),
        ExceptionType("order_overpaid", "medium", "order", "the amount paid beyond the order's amount",
                      "An order's successful payments exceed its amount."),
        ExceptionType("invalid_amount", "high", "payment, payout or order", "NULL (the amount is unknown)",
                      "A money value reconciliation needs is not a number (or missing)."),
    )
}

MARTS: dict[str, Mart] = {
    m.name: m
    for m in (
        PAYMENTS_RECONCILED,
        PAYOUT_RECONCILIATION,
        ORDER_RECONCILIATION,
        RECONCILIATION_EXCEPTIONS,
        DAILY_SETTLEMENT_SUMMARY,
        SETTLEMENT_CALENDAR,
    )
}
