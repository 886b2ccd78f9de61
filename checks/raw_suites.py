"""Suites over the raw tables (`instamojo_raw`), one per table of sources/instamojo/schema.py.

Every raw suite gets the same core (row count, primary key not null and unique, money exact,
no drifted variant columns) plus the rules of its domain kept in `RULES` below: which money
columns the API always fills and which can never be negative, the value sets of status
columns, the time order of timestamps, references between tables, freshness.

Domain facts cited from Instamojo's API reference (https://docs.instamojo.com/, "the
reference"), as docs/domain.md sums them up, and docs/api-behaviour.md (where the reference is
silent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checks.common import currency_inr, in_set, key_expectations, money_expectations
from checks.spec import VARIANT_COLUMN, Expect, PlanContext, Severity, SuitePlan, SuiteSpec, quote
from sources.instamojo.schema import RAW_TABLES, Table

# Columns dlt itself may add to a table (load id, row id, parent/child links): not the API's.
DLT_COLUMN_PREFIX = "_dlt_"


@dataclass(frozen=True)
class ValueSet:
    """The values a text column may hold."""

    values: tuple[str, ...]
    severity: Severity
    why: str


@dataclass(frozen=True)
class Reference:
    """`column` of this table names a row of `target` (same merchant): `target.target_column`.

    Checked per merchant, and only for merchants that have rows in `target`: a merchant who did
    not grant the target's scope has none, and that is not a broken reference."""

    column: str
    target: str
    target_column: str
    flag: str  # the derived boolean column the batch carries: TRUE found, FALSE not found
    why: str


@dataclass(frozen=True)
class RawRules:
    """What the domain says about one raw table, beyond the core every table gets."""

    not_null_money: tuple[str, ...] = ()
    non_negative_money: tuple[str, ...] = ()
    value_sets: dict[str, ValueSet] = field(default_factory=dict)
    # (later, earlier, why): later >= earlier whenever both are set
    ordered: tuple[tuple[str, str, str], ...] = ()
    references: tuple[Reference, ...] = ()
    # SQL expression (over alias t) of the timestamp freshness is measured on, if any
    freshness: str | None = None


_PAYOUT_MONEY = RAW_TABLES["payouts"].money_columns

RULES: dict[str, RawRules] = {
    "user_info": RawRules(),
    "user_contact": RawRules(),
    "payments": RawRules(
        # the reference's example fills all three; the sandbox shows "0.00" fees on failed and
        # pending payments, never null (docs/api-behaviour.md, "fees")
        not_null_money=("amount", "fees", "total_taxes"),
        non_negative_money=("amount", "fees", "total_taxes"),
        value_sets={
            "payment_type": ValueSet(
                ("VAN", "instapay", "Dashboard_Smart_Link", "Dashboard_Link", "Dashboard_Product",
                 "api_rap", "dashboard_rap", "sdk", "mojoPOS"),
                "warn",
                "the reference lists these payment types; a new one is worth a look, not a stop",
            ),
        },
        ordered=(
            ("updated_at", "created_at",
             "a payment updated before it was created means a clock or parsing bug, and lookback windows miss it"),
        ),
        references=(
            Reference(
                "payout_id", "payouts", "id", "payout_found",
                "a payment paid out in a payout the warehouse does not have cannot be reconciled",
            ),
        ),
        freshness="COALESCE(t.updated_at, t.created_at)",
    ),
    "payouts": RawRules(
        # every payout figure is present in the reference's example; each is a sum of amounts,
        # so none is negative (a debit would be a new payout_type, worth an error to look at)
        not_null_money=_PAYOUT_MONEY,
        non_negative_money=_PAYOUT_MONEY,
    ),
    "products": RawRules(
        not_null_money=("base_price",),
        # min/max price only matter for pay-what-you-want products and may be null
        non_negative_money=("base_price", "min_price", "max_price"),
        value_sets={
            "status": ValueSet(
                ("Live", "Archived", "Pending Moderation"),
                "error",
                "the reference's status filter knows exactly these three (20, 30, 33)",
            ),
        },
    ),
    "product_covers": RawRules(),
    "orders": RawRules(
        not_null_money=("amount",),
        non_negative_money=("amount",),
        value_sets={
            "order_status": ValueSet(
                ("Pending", "Partially Paid", "Fully Paid"),
                "error",
                "order reconciliation classifies orders by these statuses; an unknown one would be misfiled",
            ),
        },
    ),
    "order_payments": RawRules(
        not_null_money=("amount",),
        non_negative_money=("amount",),
        value_sets={
            "status": ValueSet(
                ("Success", "Failed", "Pending"),
                "error",
                "an order's payments are matched by status; an unknown one would be misfiled",
            ),
        },
        references=(
            Reference(
                "payment_id", "payments", "id", "payment_found",
                "an order paid by a payment the warehouse does not have cannot be reconciled",
            ),
        ),
    ),
    "order_items": RawRules(
        # the reference's example shows shipping_charges and discount as null
        not_null_money=("unit_price", "amount"),
        non_negative_money=("unit_price", "amount", "shipping_charges", "discount"),
    ),
    "order_item_variants": RawRules(),
}


def raw_suites() -> list[SuiteSpec]:
    """One suite per raw table, named `raw.<table>`."""
    return [
        SuiteSpec(
            name=f"raw.{name}",
            layer="raw",
            table=name,
            description=table.description,
            plan=_planner(table),
        )
        for name, table in RAW_TABLES.items()
    ]


def _planner(table: Table):
    def plan(ctx: PlanContext) -> SuitePlan:
        return plan_raw(ctx, table)

    return plan


def plan_raw(ctx: PlanContext, table: Table) -> SuitePlan:
    """The expectations and the batch query of one raw table for this run."""
    rules = RULES[table.name]
    required = table.name in ctx.settings.required_tables
    index = tuple(table.primary_key)
    if not ctx.exists("raw", table.name):
        where = f"{ctx.raw_schema}.{table.name}"
        if required:
            return SuitePlan(
                table.name, None, index,
                missing="the table does not exist, and it is required (settings.required_tables)",
            )
        return SuitePlan(
            table.name, None, index,
            skip_reason=f"{where} does not exist (endpoint not granted or never synced)",
        )

    existing = ctx.columns("raw", table.name)
    expects: list[Expect] = []
    skipped: list[str] = []
    select: list[str] = []  # column names to read from t
    derived: list[tuple[str, str]] = []  # (SQL expression over t, alias)
    joins: list[str] = []

    def need(*cols: str) -> None:
        for c in cols:
            if c in existing and c not in select:
                select.append(c)

    need(*index)

    # --- row count -------------------------------------------------------------------------
    expects.append(
        Expect(
            "ExpectTableRowCountToBeBetween", {"min_value": 1},
            "error" if required else "warn",
            "the table has at least one row",
            "a required table with no rows means the sync failed or the grant is missing"
            if required else
            "an optional table may be empty (scope not granted); worth a look, not a stop",
        )
    )

    # --- primary key -----------------------------------------------------------------------
    expects += key_expectations(index)

    # --- money -----------------------------------------------------------------------------
    for col in table.money_columns:
        need(col)
        expects += money_expectations(
            col, not_null=col in rules.not_null_money, non_negative=col in rules.non_negative_money
        )

    # --- drift: dlt variant columns (`amount__v_text`) -------------------------------------
    for col in existing:
        m = VARIANT_COLUMN.match(col)
        if not m:
            continue
        need(col)
        base = m.group("base")
        expects.append(variant_expectation(col, base, m.group("type"), base in table.money_columns))

    # --- currency --------------------------------------------------------------------------
    if any(c.name == "currency" for c in table.columns):
        need("currency")
        expects.append(currency_inr())

    # --- value sets ------------------------------------------------------------------------
    for col, vs in rules.value_sets.items():
        need(col)
        expects.append(in_set(col, vs.values, vs.severity, vs.why))

    # --- time order ------------------------------------------------------------------------
    for later, earlier, why in rules.ordered:
        need(later, earlier)
        expects.append(
            Expect(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": later, "column_B": earlier, "or_equal": True,
                 "ignore_row_if": "either_value_is_missing"},
                "error",
                f"{later} ≥ {earlier}",
                why,
            )
        )

    # --- references ------------------------------------------------------------------------
    for ref in rules.references:
        need(ref.column)
        target_cols = ctx.columns("raw", ref.target)
        if not ctx.exists("raw", ref.target) or ref.target_column not in target_cols or "merchant" not in target_cols:
            skipped.append(
                f"{ref.column} → {ref.target}.{ref.target_column}: {ctx.raw_schema}.{ref.target} "
                "does not exist (endpoint not granted or never synced)"
            )
            continue
        if ref.column not in existing:
            # the contract's column is gone: let great-expectations report the missing column
            expects.append(_reference_expect(ref))
            continue
        n = len(joins)
        target = ctx.qualified("raw", ref.target)
        # DISTINCT subqueries, not a plain join: duplicates in the target must not duplicate
        # rows here (the target's own uniqueness check reports them)
        joins.append(
            f"LEFT JOIN (SELECT DISTINCT merchant, {quote(ref.target_column)} AS k FROM {target}) r{n} "
            f"ON r{n}.merchant = t.merchant AND r{n}.k = t.{quote(ref.column)}"
        )
        joins.append(
            f"LEFT JOIN (SELECT DISTINCT merchant FROM {target}) rm{n} ON rm{n}.merchant = t.merchant"
        )
        # NULL (not judged) when there is no reference, or the merchant has no rows in the target
        derived.append((
            f"CASE WHEN t.{quote(ref.column)} IS NULL OR rm{n}.merchant IS NULL THEN NULL "
            f"WHEN r{n}.k IS NULL THEN FALSE ELSE TRUE END",
            ref.flag,
        ))
        expects.append(_reference_expect(ref))

    # --- freshness -------------------------------------------------------------------------
    max_age = ctx.settings.freshness_max_age
    if rules.freshness:
        if max_age is None:
            skipped.append("freshness: off (settings.freshness_max_age is None)")
        else:
            cutoff = ctx.now - max_age
            # set on one row per merchant (its newest), NULL elsewhere: the unexpected rows are
            # then the stale merchants themselves, however many rows each has
            derived.append((
                f"CASE WHEN ROW_NUMBER() OVER (PARTITION BY t.merchant ORDER BY {rules.freshness} DESC NULLS LAST, "
                f"t.{quote(index[-1])}) = 1 THEN MAX({rules.freshness}) OVER (PARTITION BY t.merchant) END",
                "merchant_newest_at",
            ))
            expects.append(
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "merchant_newest_at", "min_value": cutoff},
                    "error",
                    f"every merchant's newest {table.name[:-1]} is at most {_age(max_age)} old "
                    f"(newer than {cutoff:%Y-%m-%d %H:%M} UTC)",
                    "a stale merchant means its sync stopped (or its token was revoked) without anyone noticing",
                    id_columns=("merchant",),
                    doc=f"every merchant's newest {table.name[:-1]} (updated_at, else created_at) is at most "
                        "`freshness_max_age_hours` old",
                )
            )

    # --- schema evolution: columns the contract does not know -------------------------------
    # The source keeps a field the API adds as a new column (docs/raw-tables.md); the batch
    # carries such columns so great-expectations sees them, and the expectation names them.
    declared = {c.name for c in table.columns}
    unknown = [
        c for c in existing
        if c not in declared and not c.startswith(DLT_COLUMN_PREFIX) and not VARIANT_COLUMN.match(c)
    ]
    aliases = [alias for _, alias in derived]
    expects.append(
        Expect(
            "ExpectTableColumnsToMatchSet",
            {"column_set": select + aliases, "exact_match": True},
            "warn",
            "no column beyond the raw-table contract (sources/instamojo/schema.py)",
            "the API added a field: it is kept, but nothing downstream uses it until the contract says what it means",
        )
    )
    select += unknown

    cols = [f"t.{quote(c)}" for c in select] + [f"{expr} AS {quote(alias)}" for expr, alias in derived]
    sql = f"SELECT {', '.join(cols)} FROM {ctx.qualified('raw', table.name)} t"
    if joins:
        sql += " " + " ".join(joins)
    sql += ctx.merchant_filter("t")
    # a stable row order: offending ids come out the same on every run and backend
    order = [f"t.{quote(c)}" for c in index if c in existing]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    return SuitePlan(table.name, sql, index, tuple(expects), tuple(skipped))


def variant_expectation(col: str, base: str, kind: str, money: bool) -> Expect:
    """`col` (dlt's variant of `base`, e.g. amount__v_text) holds nothing: the API never sent
    `base` a value of the wrong type."""
    return Expect(
        "ExpectColumnValuesToBeNull", {"column": col}, "error",
        f"{col} is empty: the API sent no {kind} where {base} expects a {'money' if money else 'value'}",
        f"the API sent a value {base} could not hold (e.g. \"N/A\"); {base} is NULL on that row",
    )


def _reference_expect(ref: Reference) -> Expect:
    return Expect(
        "ExpectColumnValuesToBeInSet", {"column": ref.flag, "value_set": [True]}, "error",
        f"every {ref.column} names a row of {ref.target} (same merchant)",
        ref.why,
        detail_columns=(ref.column,),
    )


def _age(age) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"
