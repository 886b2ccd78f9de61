"""The marts as the dbt project declares them, for Python code that needs their shape (the
great-expectations suites, docs, tests): read from `models/marts/_marts.yml`, the one place where
each mart's grain, key, columns, types and descriptions are written."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; types-PyYAML is not in the venv

MONEY = "DECIMAL(18,2)"
MARTS_YAML = Path(__file__).resolve().parent / "models" / "marts" / "_marts.yml"


@dataclass(frozen=True)
class MartColumn:
    name: str
    sql_type: str
    description: str


@dataclass(frozen=True)
class Mart:
    """A mart table: its grain, key and columns (in table order)."""

    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[MartColumn, ...]
    description: str
    comment: str = ""  # the description as dbt writes it to the database (with the grain)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class ExceptionType:
    """A kind of row in reconciliation_exceptions."""

    name: str
    severity: str
    entity_type: str
    amount_at_stake: str
    meaning: str


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Mart], dict[str, ExceptionType]]:
    doc = yaml.safe_load(MARTS_YAML.read_text())
    marts: dict[str, Mart] = {}
    exception_types: dict[str, ExceptionType] = {}
    for model in doc["models"]:
        meta = model.get("config", {}).get("meta", {})
        columns = []
        for col in model["columns"]:
            columns.append(MartColumn(col["name"], col["data_type"], col["description"]))
            for e in col.get("config", {}).get("meta", {}).get("exception_types", []):
                exception_types[e["name"]] = ExceptionType(**e)
        comment = " ".join(model["description"].split())
        marts[model["name"]] = Mart(model["name"], meta["grain"], tuple(meta["key"]), tuple(columns),
                                    comment.split(" Grain: ")[0], comment)
    return marts, exception_types


MARTS: dict[str, Mart] = _load()[0]
EXCEPTION_TYPES: dict[str, ExceptionType] = _load()[1]
