"""The package declares what it imports, and imports what it declares (pyproject.toml)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sources", "pipelines", "transforms", "checks", "report", "instamojo_sandbox", "orchestration")
# declared for what they bring along rather than for an import of ours
NOT_IMPORTED = {
    "dbt-duckdb", "dbt-postgres",  # dbt's adapters, found by dbt by name
    "psycopg2-binary",  # imported as psycopg2 (mapped below), and dlt's postgres driver
    "vl-convert-python",  # altair's SVG renderer
    "dagster-webserver", "dagster-postgres",  # `dagster dev`'s UI, run storage in production
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra, extra_specs in project.get("optional-dependencies", {}).items():
        if extra != "test":
            specs += extra_specs
    return {_normalise(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in specs}


def _imported_distributions() -> dict[str, set[str]]:
    dists = packages_distributions()
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    for dist in dists.get(top, [top]):
                        found.setdefault(_normalise(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    declared = _declared()
    undeclared = {d: sorted(files)[:3] for d, files in _imported_distributions().items() if d not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_dependency_is_used():
    unused = _declared() - set(_imported_distributions()) - NOT_IMPORTED
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
