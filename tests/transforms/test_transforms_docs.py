"""The marts' documentation: written once in the dbt YAML, generated into docs/marts.md, persisted
as comments in both databases, built into dbt's static docs site; the example queries in
docs/marts.md run on DuckDB and Postgres over real marts."""

from __future__ import annotations

import re
from pathlib import Path

from transforms.docs import main as docs_main
from transforms.docs import static_site
from transforms.marts import EXCEPTION_TYPES, MARTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "marts.md"


def test_docs_marts_md_is_generated_from_the_yaml():
    assert docs_main(["--check"]) == 0, "run `python -m transforms.docs`"
    text = DOC.read_text()
    for mart in MARTS.values():
        section = text[text.index(f"### `{mart.name}`"):]
        for column in mart.columns:
            assert f"| `{column.name}` | {column.sql_type} |" in section, f"{mart.name}.{column.name} undocumented"


def test_every_exception_type_is_documented():
    text = DOC.read_text()
    for name in EXCEPTION_TYPES:
        assert re.search(rf"^\| `{name}` \| ", text, re.MULTILINE), f"exception type {name} undocumented"


def test_every_exception_type_is_produced_by_the_sql():
    sql = (ROOT / "transforms/models/marts/reconciliation_exceptions.sql").read_text()
    produced = set(re.findall(r"'([a-z_]+):' \|\|", sql))
    assert produced == set(EXCEPTION_TYPES)


def test_no_citation_outside_the_repository():
    for path in [DOC, *(ROOT / "transforms").rglob("*.sql"), *(ROOT / "transforms").rglob("*.yml"),
                 *(ROOT / "transforms").rglob("*.py")]:
        assert "DESIGN.md" not in path.read_text(), path


def _example_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_docs_have_at_least_three_example_queries():
    assert len(_example_queries()) >= 3


def test_example_queries_run(cases):
    for query in _example_queries():
        rows = cases.warehouse.query_dicts(re.sub(r"\binstamojo\.", f"{cases.marts}.", query))
        assert rows, f"an example query should show something on the hand-computed cases:\n{query}"


def test_marts_carry_their_descriptions_as_comments(cases):
    env = cases
    for mart in (MARTS["payout_reconciliation"], MARTS["settlement_calendar"]):
        column = mart.columns[-1]
        if env.warehouse.dialect == "duckdb":
            sql = (f"SELECT comment FROM duckdb_columns() WHERE schema_name = '{env.marts}' "
                   f"AND table_name = '{mart.name}' AND column_name = '{column.name}'")
            table_sql = (f"SELECT comment FROM duckdb_tables() WHERE schema_name = '{env.marts}' "
                         f"AND table_name = '{mart.name}'")
        else:
            sql = f"SELECT col_description('{env.marts}.{mart.name}'::regclass, {len(mart.columns)})"
            table_sql = f"SELECT obj_description('{env.marts}.{mart.name}'::regclass, 'pg_class')"
        assert env.warehouse.query(sql)[1] == [(column.description,)]
        assert env.warehouse.query(table_sql)[1] == [(mart.comment,)]


def test_static_docs_site_is_one_file_with_the_marts_and_their_columns(tmp_path):
    """`make docs`: dbt's documentation as one HTML file (manifest and catalog inside it). A
    browser test opening it headless is the lead's (Chromium in the test setup)."""
    page = static_site(tmp_path / "docs" / "index.html")
    html = page.read_text()
    assert page.stat().st_size > 100_000
    for mart in MARTS:
        assert f"model.instamojo_reconciliation.{mart}" in html
    description = MARTS["payout_reconciliation"].columns[-1].description
    assert description.split(" (")[0] in html  # "residual" … as JSON inside the page
    # nothing to fetch: no script or stylesheet from elsewhere
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html)
