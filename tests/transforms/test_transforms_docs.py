"""docs/marts.md documents every mart column and exception type, and its example queries run on
DuckDB and Postgres over real marts."""

from __future__ import annotations

import re
from pathlib import Path

from tests.transforms import cases
from transforms.marts import EXCEPTION_TYPES, MARTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "marts.md"


def _section(text: str, mart: str) -> str:
    match = re.search(rf"^### `{mart}`\n(.*?)(?=^##)", text, re.S | re.M)
    assert match, f"docs/marts.md has no section for {mart}"
    return match.group(1)


def test_every_mart_column_is_documented():
    text = DOC.read_text()
    for mart in MARTS.values():
        section = _section(text, mart.name)
        for column in mart.columns:
            assert f"| `{column.name}` | {column.sql_type} |" in section, f"{mart.name}.{column.name} undocumented"


def test_every_exception_type_is_documented():
    text = DOC.read_text()
    for name in EXCEPTION_TYPES:
        assert re.search(rf"^\| `{name}` \| ", text, re.M), f"exception type {name} undocumented"


def test_every_exception_type_is_produced_by_the_sql():
    sql = (Path(__file__).resolve().parents[2] / "transforms/models/marts/reconciliation_exceptions.sql").read_text()
    produced = set(re.findall(r"'([a-z_]+):' \|\|", sql))
    assert produced == set(EXCEPTION_TYPES)


def _example_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


def test_the_docs_have_at_least_three_example_queries():
    assert len(_example_queries()) >= 3


def test_example_queries_run(env):
    for i, case in enumerate(cases.ALL_CASES):
        case(env, f"m{i:02d}")
    env.build()
    for query in _example_queries():
        rows = env.warehouse.query_dicts(re.sub(r"\binstamojo\.", f"{env.marts}.", query))
        assert rows, f"an example query should show something on the hand-computed cases:\n{query}"


def test_marts_carry_their_descriptions_as_comments(env):
    env.build()
    mart = MARTS["payout_reconciliation"]
    column = mart.columns[-1]
    if env.warehouse.dialect == "duckdb":
        sql = (f"SELECT comment FROM duckdb_columns() WHERE schema_name = '{env.marts}' "
               f"AND table_name = '{mart.name}' AND column_name = '{column.name}'")
    else:
        sql = f"SELECT col_description('{env.marts}.{mart.name}'::regclass, {len(mart.columns)})"
    assert env.warehouse.query(sql)[1] == [(column.description,)]
