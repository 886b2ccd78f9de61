"""Suites over the reconciliation marts (`instamojo`), one per mart of transforms/marts.py.

Every mart gets its key (not null, unique) and exact money (DECIMAL, two places). On top, what
the marts are for: one row per raw payment, payout and order (nothing lost or invented by the
transforms), status columns within the sets docs/marts.md defines, and the reconciliation
verdicts that must hold for the data to be trusted — every payout's residual within the
configured tolerance (`[transforms] payout_tolerance`, passed as `CheckSettings.payout_residual_tolerance`), no order whose API status
contradicts its payments. Business exceptions a person should look at (overdue settlements,
high-severity rows of reconciliation_exceptions) are warnings: the data is right, the money
may not be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from checks.common import currency_inr, in_set, key_expectations, money_expectations
from checks.spec import Expect, PlanContext, Severity, SuitePlan, SuiteSpec, quote


@dataclass(frozen=True)
class NotInSet:
    """Values a column must not hold: a verdict of the transforms that means trouble."""

    column: str
    values: tuple[str, ...]
    severity: Severity
    what: str
    why: str
    detail_columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MartRules:
    """What the checks expect of one mart beyond its key and exact money."""

    # raw table and its key whose distinct rows the mart holds one-to-one (its grain)
    one_row_per: tuple[str, tuple[str, ...]] | None = None
    non_negative: tuple[str, ...] = ()
    # columns whose ≥ 0 is only a warning, and why
    non_negative_warn: tuple[str, ...] = ()
    non_negative_warn_why: str = ""
    value_sets: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    not_in_set: tuple[NotInSet, ...] = ()
    # (later, earlier, strictly, why)
    ordered: tuple[tuple[str, str, bool, str], ...] = ()
    currency: bool = False
    residual: bool = False


_GRAIN_WHY = (
    "the mart must hold exactly one row per raw {what}: fewer means the transforms dropped some "
    "(or the marts are stale: run the transforms), more means they invented some"
)

RULES: dict[str, MartRules] = {
    "payments_reconciled": MartRules(
        one_row_per=("payments", ("merchant", "id")),
        non_negative=("amount", "fees", "taxes"),
        value_sets={
            "status": (("successful", "failed", "pending"), "Instamojo's status true/false/null, spelled out"),
            "settlement_state": (
                ("settled", "awaiting_payout", "overdue", "failed", "pending"),
                "the settlement states docs/marts.md defines; another one would be counted nowhere",
            ),
        },
        not_in_set=(
            NotInSet(
                "settlement_state", ("overdue",), "warn",
                "no successful payment is overdue (past its expected payout date plus the grace, with no payout)",
                "Instamojo settles T+3 business days; an overdue payment is money the merchant has not received",
                detail_columns=("expected_payout_date", "as_of_date"),
            ),
        ),
        currency=True,
    ),
    "payout_reconciliation": MartRules(
        one_row_per=("payouts", ("merchant", "id")),
        value_sets={
            "status": (
                ("balanced", "residual", "no_payments_linked", "payments_missing", "amount_invalid"),
                "the payout verdicts docs/marts.md defines",
            ),
        },
        not_in_set=(
            NotInSet(
                "status", ("payments_missing", "no_payments_linked"), "warn",
                "every payout's sales equal the successful payments linked to it",
                "a payout whose payments are not all in the warehouse points at payments the sync missed",
                detail_columns=("status", "sales_difference"),
            ),
        ),
        currency=True,
        residual=True,
    ),
    "order_reconciliation": MartRules(
        one_row_per=("orders", ("merchant", "id")),
        value_sets={
            "status": (
                ("paid", "unpaid", "partially_paid", "overpaid", "status_mismatch", "amount_invalid"),
                "the order verdicts docs/marts.md defines",
            ),
        },
        not_in_set=(
            NotInSet(
                "status", ("status_mismatch",), "error",
                "no order's API status contradicts its successful payments",
                "an order the API calls Fully Paid whose payments fall short (or the reverse) is money "
                "missing or a status nobody can trust",
                detail_columns=("status", "api_order_status", "balance_due"),
            ),
        ),
        currency=True,
    ),
    "reconciliation_exceptions": MartRules(
        non_negative=("amount_at_stake",),
        value_sets={
            "severity": (("high", "medium", "low"), "the exception severities docs/marts.md defines"),
            "entity_type": (("payment", "payout", "order"), "an exception names a payment, payout or order"),
        },
        not_in_set=(
            NotInSet(
                "severity", ("high",), "warn",
                "reconciliation found no high-severity exception",
                "high means money may be missing or wrong; each row of reconciliation_exceptions says why",
                detail_columns=(),
            ),
        ),
    ),
    "daily_settlement_summary": MartRules(
        non_negative=("gross_amount", "fees", "taxes", "paid_out_amount", "awaiting_payout_amount"),
        non_negative_warn=("held_amount",),
        non_negative_warn_why=(
            "held − released since the merchant's first synced day: negative when a hold made before "
            "the synced history is released inside it (a partial backfill), else a transforms bug"
        ),
    ),
    "settlement_calendar": MartRules(
        ordered=(
            ("expected_payout_date", "calendar_date", True,
             "a payout cannot be expected on or before the payment's own day (T+3 business days)"),
            ("overdue_after_date", "expected_payout_date", False,
             "the overdue deadline is the expected payout date plus a grace of zero or more days"),
        ),
    ),
}


def marts_suites() -> list[SuiteSpec]:
    """One suite per mart, named `marts.<mart>`."""
    from transforms.marts import MARTS

    return [
        SuiteSpec(
            name=f"marts.{name}", layer="marts", table=name, description=mart.description,
            plan=_planner(name),
        )
        for name, mart in MARTS.items()
        if name in RULES
    ]


def _planner(name: str):
    def plan(ctx: PlanContext) -> SuitePlan:
        return plan_mart(ctx, name)

    return plan


def plan_mart(ctx: PlanContext, name: str) -> SuitePlan:
    """The expectations and the batch query of one mart for this run."""
    from transforms.marts import MARTS, MONEY

    mart = MARTS[name]
    rules = RULES[name]
    key = tuple(mart.key)
    if not ctx.exists("marts", name):
        return SuitePlan(
            name, None, key,
            missing="the table does not exist: run the transforms (make transform) before the checks",
        )
    existing = ctx.columns("marts", name)
    money = [c.name for c in mart.columns if c.sql_type == MONEY]
    expects: list[Expect] = []
    derived: list[tuple[str, str]] = []

    if rules.one_row_per is not None:
        raw_table, raw_key = rules.one_row_per
        expected = _distinct_rows(ctx, raw_table, raw_key)
        expects.append(
            Expect(
                "ExpectTableRowCountToEqual", {"value": expected}, "error",
                f"one row per raw {raw_table[:-1]}: {expected} rows, as {ctx.raw_schema}.{raw_table} has",
                _GRAIN_WHY.format(what=raw_table[:-1]),
                doc=f"one row per raw {raw_table[:-1]}: as many rows as distinct ({', '.join(raw_key)}) "
                    f"in raw {raw_table}",
            )
        )
    expects += key_expectations(key, "key")
    for col in money:
        warn = col in rules.non_negative_warn
        expects += money_expectations(
            col,
            non_negative=col in rules.non_negative or warn,
            non_negative_severity="warn" if warn else "error",
            non_negative_why=rules.non_negative_warn_why if warn else (
                "never negative by construction (docs/marts.md); below zero means a transform "
                "double-counts or a raw amount went wrong"
            ),
        )
    if rules.currency:
        expects.append(currency_inr())
    for col, (values, why) in rules.value_sets.items():
        expects.append(in_set(col, values, "error", why))
    if name == "reconciliation_exceptions":
        from transforms.marts import EXCEPTION_TYPES

        expects.append(in_set("exception_type", sorted(EXCEPTION_TYPES), "error",
                              "the exception types docs/marts.md documents; an unknown one has no meaning"))
    for rule in rules.not_in_set:
        expects.append(
            Expect(
                "ExpectColumnValuesToNotBeInSet", {"column": rule.column, "value_set": list(rule.values)},
                rule.severity, rule.what, rule.why, detail_columns=rule.detail_columns,
            )
        )
    for later, earlier, strictly, why in rules.ordered:
        expects.append(
            Expect(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": later, "column_B": earlier, "or_equal": not strictly,
                 "ignore_row_if": "either_value_is_missing"},
                "error", f"{later} {'>' if strictly else '≥'} {earlier}", why,
            )
        )
    if rules.residual:
        tolerance = ctx.settings.payout_residual_tolerance
        # great-expectations turns bounds into floats; whole paise are exact as floats (and
        # Decimal-vs-float comparisons are exact in Python), rupees such as 0.3 are not. So the
        # residual is judged in paise: residual × 100, an exact Decimal.
        paise = int(tolerance * 100)
        if Decimal(paise) != tolerance * 100:  # CheckSettings already refuses this
            raise ValueError(f"payout residual tolerance {tolerance} is not a whole number of paise")
        derived.append(("residual * 100", "residual_paise"))
        expects.append(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "residual_paise", "min_value": -paise, "max_value": paise},
                "error",
                f"every payout's |residual| ≤ ₹{tolerance} (paid = sales − fee − tax − held + reversed "
                "− refunded − affiliate − partner)",
                "a payout whose figures do not add up is money paid wrongly, or a payout identity the "
                "reconciliation does not understand",
                detail_columns=("residual", "paid_amount", "expected_paid_amount"),
                doc="every payout's |residual| ≤ `payout_tolerance` (paid = sales − fee − tax − held "
                    "+ reversed − refunded − affiliate − partner), compared in exact paise",
            )
        )

    # read what the expectations use, the key first; the rest of the mart stays in the warehouse
    wanted: list[str] = list(key)
    for e in expects:
        for c in e.columns + (e.detail_columns or ()):
            if c not in wanted and c not in (alias for _, alias in derived):
                wanted.append(c)
    select = [c for c in wanted if c in existing]  # a missing one: great-expectations says so
    cols = [quote(c) for c in select] + [f"{expr} AS {quote(alias)}" for expr, alias in derived]
    sql = f"SELECT {', '.join(cols)} FROM {ctx.qualified('marts', name)}"
    if "merchant" in existing:
        sql += ctx.merchant_filter()
    order = [quote(c) for c in key if c in existing]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    return SuitePlan(name, sql, key, tuple(expects))


def _distinct_rows(ctx: PlanContext, table: str, key: tuple[str, ...]) -> int:
    """Distinct keys of a raw table (0 when it does not exist: the mart is then empty too)."""
    if not ctx.exists("raw", table):
        return 0
    scalar = ctx.scalar
    if scalar is None:
        raise RuntimeError(f"planning the mart of raw {table} needs a warehouse to count its rows (PlanContext.scalar)")
    cols = ", ".join(quote(c) for c in key)
    return int(scalar(f"SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM {ctx.qualified('raw', table)}"
                          f"{ctx.merchant_filter()}) d"))
