"""Integrity queries over the published marts: each must return zero rows.

In the style of dbt's data tests (fivetran's dbt_stripe): a query that lists what is wrong, so an
empty result means the property holds and a non-empty one shows the offending rows. Queries live
in `transforms/integrity_checks/*.sql` (templated like the models: `{{ mart() }}`, `{{ source() }}`),
plus one generated per mart: one row per declared key, and no NULL key column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transforms.marts import MARTS, Mart
from transforms.templating import RawTableShape, check_identifier, render, source_sql
from transforms.warehouse import Warehouse

CHECKS_DIR = Path(__file__).parent / "integrity_checks"


def one_row_per_key_sql(mart: Mart, marts_schema: str) -> str:
    """Rows whose key is repeated or has a NULL part."""
    key = ", ".join(mart.key)
    any_null = " OR ".join(f"{k} IS NULL" for k in mart.key)
    return (
        f"SELECT {key}, COUNT(*) AS copies FROM {marts_schema}.{mart.name} "
        f"GROUP BY {key} HAVING COUNT(*) > 1 OR {any_null}"
    )


def integrity_queries(warehouse: Warehouse, *, raw_schema: str = "instamojo_raw", marts_schema: str = "instamojo") -> dict[str, str]:
    """Name → SQL of every integrity query, rendered for this warehouse (raw tables that do not
    exist read as empty)."""
    check_identifier("raw schema", raw_schema)
    check_identifier("marts schema", marts_schema)
    shapes: dict[str, RawTableShape] = {}

    def source(table: str) -> str:
        if table not in shapes:
            exists = warehouse.table_exists(raw_schema, table)
            cols = frozenset(warehouse.columns_of(raw_schema, table)) if exists else frozenset()
            shapes[table] = RawTableShape(exists, cols)
        return source_sql(table, raw_schema, shapes[table])

    def mart(name: str) -> str:
        if name not in MARTS:
            raise KeyError(f"unknown mart {name!r}")
        return f"{marts_schema}.{name}"

    queries = {f"one_row_per_key__{m.name}": one_row_per_key_sql(m, marts_schema) for m in MARTS.values()}
    for path in sorted(CHECKS_DIR.glob("*.sql")):
        queries[path.stem] = render(path.read_text(), source=source, mart=mart)
    return queries


def run_integrity_checks(
    warehouse: Warehouse, *, raw_schema: str = "instamojo_raw", marts_schema: str = "instamojo"
) -> dict[str, list[dict[str, Any]]]:
    """Run every integrity query; returns name → offending rows (an empty list = it holds)."""
    return {
        name: warehouse.query_dicts(sql)
        for name, sql in integrity_queries(warehouse, raw_schema=raw_schema, marts_schema=marts_schema).items()
    }
