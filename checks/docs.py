"""The suites as documentation: docs/checks.md's "The suites" section is generated from the
code, so the page and the checks cannot drift apart.

    python -m checks.docs           # rewrite the generated section of docs/checks.md
    python -m checks.docs --check   # exit 1 if it is out of date (a test runs this)

The catalogue is what `plan_checks` plans on a warehouse holding every raw table and every mart
(empty), with freshness on: the expectations a full sync gets. Variant columns (`…__v_text`)
exist only once the API sent a bad value, so their rule is listed once, generically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: python -m checks.docs -->"
END = "<!-- END GENERATED -->"
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "checks.md"


def catalogue_markdown() -> str:
    """Markdown: per suite, its table and every expectation with its severity and why."""
    import tempfile

    from checks.raw_suites import variant_expectation
    from checks.runner import plan_checks
    from checks.settings import CheckSettings
    from sources.instamojo.schema import RAW_TABLES
    from transforms import build_marts
    from transforms.warehouse import Warehouse

    with tempfile.TemporaryDirectory(prefix="checks-docs-") as tmp:
        warehouse = Warehouse.duckdb(f"{tmp}/catalogue.duckdb")  # a file: dbt opens it itself
        try:
            warehouse.execute("CREATE SCHEMA instamojo_raw")
            for table in RAW_TABLES.values():
                warehouse.execute(table.create_table_sql("instamojo_raw"))
            build_marts(warehouse, work_dir=tmp)
            plans = plan_checks(warehouse, settings=CheckSettings(freshness_max_age=dt.timedelta(hours=72)))
        finally:
            warehouse.close()

    out: list[str] = []
    for spec, plan in plans:
        layer = "instamojo_raw" if spec.layer == "raw" else "instamojo"
        out.append(f"### `{spec.name}`\n")
        out.append(f"Guards `{layer}.{spec.table}`: {spec.description} "
                   f"Offending rows are named by ({', '.join(plan.index_columns)}).\n")
        out.append("| expectation | severity | why |")
        out.append("|---|---|---|")
        rows = list(plan.expectations)
        if spec.layer == "raw":
            generic = variant_expectation("<column>__v_<type>", "<column>", "<type>", True)
            rows.append(replace(generic, doc="every variant column `<column>__v_<type>` dlt created is empty"))
        for what, severity, why in _grouped(rows):
            out.append(f"| {_cell(what)} | {severity} | {_cell(why)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _grouped(expects) -> list[tuple[str, str, str]]:
    """(what, severity, why) rows; the same rule over several columns (money, keys) is one row
    naming them all, in the order they first appear."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for e in expects:
        what = e.doc or e.what
        cols = e.columns
        if len(cols) == 1 and what.startswith(cols[0] + " ") and e.doc is None:
            key = ("{col}" + what[len(cols[0]):], e.severity, e.why)
            groups.setdefault(key, []).append(cols[0])
        else:
            groups.setdefault((what, e.severity, e.why), [])
    rows = []
    for (what, severity, why), cols in groups.items():
        if cols:
            names = ", ".join(f"`{c}`" for c in cols)
            what = what.replace("{col}", names if len(cols) == 1 else f"each of {names}", 1)
        rows.append((what, severity, why))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render(page: str, catalogue: str) -> str:
    """`page` with the text between the markers replaced by `catalogue`."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"{DOC_PATH} lacks the markers {BEGIN!r} … {END!r}")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{catalogue}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/checks.md is out of date")
    args = parser.parse_args(argv)
    page = DOC_PATH.read_text(encoding="utf-8")
    updated = render(page, catalogue_markdown())
    if args.check:
        if updated != page:
            print(f"{DOC_PATH} is out of date: run `python -m checks.docs`", file=sys.stderr)
            return 1
        return 0
    if updated != page:
        DOC_PATH.write_text(updated, encoding="utf-8")
        print(f"updated {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
