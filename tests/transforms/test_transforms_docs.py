"""The marts' documentation: written once in the dbt YAML, generated into docs/marts.md, persisted
as comments in both databases, built into dbt's static docs site; the example queries in
docs/marts.md run on DuckDB and Postgres over real marts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

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
    outside = "DESIGN" + ".md"  # a design note kept outside the repository (spelled so this file does not name it)
    for path in [DOC, *(ROOT / "transforms").rglob("*.sql"), *(ROOT / "transforms").rglob("*.yml"),
                 *(ROOT / "transforms").rglob("*.py")]:
        assert outside not in path.read_text(), path


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


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory) -> Path:
    return static_site(tmp_path_factory.mktemp("dbt-docs") / "index.html")


def test_static_docs_site_is_one_file_with_the_marts_and_their_columns(docs_site):
    """`make docs`: dbt's documentation as one HTML file (manifest and catalog inside it)."""
    page = docs_site
    html = page.read_text()
    assert page.stat().st_size > 100_000
    for mart in MARTS:
        assert f"model.instamojo_reconciliation.{mart}" in html
    description = MARTS["payout_reconciliation"].columns[-1].description
    assert description.split(" (")[0] in html  # "residual" … as JSON inside the page
    # nothing to fetch: no script or stylesheet from elsewhere
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html)


def test_static_docs_site_opens_offline_in_a_browser(docs_site, browser):
    """An analyst opens the file in headless Chromium with the network off: dbt's docs app
    renders, lists the marts, and a mart's page shows its columns' descriptions."""
    page = browser.open(docs_site)
    description = MARTS["payout_reconciliation"].columns[-1].description.split(" (")[0]
    browser.js("window.location.hash = '#!/model/model.instamojo_reconciliation.payout_reconciliation'")
    text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = browser.js("return document.body.innerText") or ""
        if "payout_reconciliation" in text and description[:40] in text:
            break
        time.sleep(0.25)
    assert "payout_reconciliation" in text, "the docs app did not render the mart's page"
    assert description[:40] in text, "the mart's page does not show its column descriptions"
    for mart in ("payments_reconciled", "reconciliation_exceptions"):
        assert mart in browser.js("return document.body.innerHTML")
    page = browser.refresh_logs()
    assert not page.external_requests, f"the docs page tried to reach the network: {page.external_requests[:3]}"
