"""The marts' documentation, from the dbt project's YAML (written once, in
`models/marts/_marts.yml`):

    python -m transforms.docs                  # rewrite the generated part of docs/marts.md
    python -m transforms.docs --check          # exit 1 if it is out of date (a test runs this)
    python -m transforms.docs --static FILE    # dbt's documentation site as one HTML file (make docs)

The static site is `dbt docs generate --static` over a scratch DuckDB file holding empty raw tables
and the marts built from them: the models, their lineage, every column's type and description,
without a connection to the real warehouse. The file embeds everything it shows and opens offline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from transforms.marts import EXCEPTION_TYPES, MARTS

BEGIN = "<!-- BEGIN GENERATED: python -m transforms.docs -->"
END = "<!-- END GENERATED -->"
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "marts.md"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def tables_markdown() -> str:
    """Markdown: every exception type, then every mart with its columns."""
    out = ["## Exception types", "",
           "| type | severity | entity | `amount_at_stake` | raised when |", "|---|---|---|---|---|"]
    for e in EXCEPTION_TYPES.values():
        out.append(f"| `{e.name}` | {_cell(e.severity)} | {_cell(e.entity_type)} | {_cell(e.amount_at_stake)} "
                   f"| {_cell(e.meaning)} |")
    out += ["", "## Tables", ""]
    for mart in MARTS.values():
        out.append(f"### `{mart.name}`")
        out.append("")
        out.append(f"{_cell(mart.comment)} Key: {', '.join(f'`{k}`' for k in mart.key)}.")
        out.append("")
        out.append("| column | type | meaning |")
        out.append("|---|---|---|")
        for c in mart.columns:
            out.append(f"| `{c.name}` | {c.sql_type} | {_cell(c.description)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render(text: str) -> str:
    """`text` (docs/marts.md) with its generated part replaced."""
    start, end = text.index(BEGIN), text.index(END)
    return text[: start + len(BEGIN)] + "\n" + tables_markdown() + text[end:]


def static_site(out: Path) -> Path:
    """Build dbt's documentation as one HTML file at `out`; returns it."""
    from sources.instamojo.schema import RAW_TABLES
    from transforms.dbt import build, invoke
    from transforms.warehouse import Warehouse

    with tempfile.TemporaryDirectory(prefix="instamojo-dbt-docs-") as tmp:
        warehouse = Warehouse.duckdb(str(Path(tmp) / "docs.duckdb"))
        try:
            warehouse.execute("CREATE SCHEMA instamojo_raw")
            for table in RAW_TABLES.values():
                warehouse.execute(table.create_table_sql("instamojo_raw"))
            target = warehouse.target("instamojo_raw", "instamojo")
        finally:
            warehouse.close()
        build(target, work_dir=tmp)
        invoke(target, ["docs", "generate", "--static", "--vars",
                        '{"instamojo_raw_schema": "instamojo_raw", "instamojo_marts_schema": "instamojo"}'],
               work_dir=tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "target" / "static_index.html", out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/marts.md is out of date")
    parser.add_argument("--static", type=Path, metavar="FILE", help="write dbt's docs site as one HTML file")
    args = parser.parse_args(argv)
    if args.static:
        path = static_site(args.static)
        print(f"dbt docs: {path} (one file; opens offline in a browser)")
        return 0
    text = DOC_PATH.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("docs/marts.md is out of date: run `python -m transforms.docs`", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
