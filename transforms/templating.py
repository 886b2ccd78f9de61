"""The few template calls the SQL models use, and how they render on DuckDB and Postgres.

Models are plain SQL that runs unchanged on both databases (the portable subset: CTEs, window
functions, `FILTER`, `AT TIME ZONE`, `IS DISTINCT FROM`, `||`); only these calls are replaced:

- `{{ source('payments') }}`  a raw table as a subquery with every column `sources.instamojo.schema`
  declares for it plus a `<money column>__v_text` for each money column. A column the raw table
  lacks (an older sync, no non-number ever seen) reads as a typed NULL; a raw table that does not
  exist (the merchant never granted that scope) reads as an empty relation of the same shape.
- `{{ ref('model') }}`  another model's result (a temporary table of this build).
- `{{ mart('name') }}`  a published mart table (used by the integrity queries).
- `{{ var('name') }}`  a setting or build parameter, as a SQL literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from sources.instamojo.schema import RAW_TABLES, SQL_TYPES

_CALL = re.compile(r"\{\{\s*(source|ref|mart|var)\(\s*'([A-Za-z0-9_]+)'\s*\)\s*\}\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# the suffix dlt gives the column that keeps a value it could not coerce to the column's type
VARIANT_TEXT_SUFFIX = "__v_text"
TEMP_PREFIX = "tr__"


def check_identifier(kind: str, name: str) -> str:
    """Schema and table names are interpolated into SQL: accept plain identifiers only."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or len(name) > 63:
        raise ValueError(f"{kind} {name!r} is not a plain SQL identifier (letters, digits, _; max 63)")
    return name


def temp_name(model: str) -> str:
    """The temporary table holding `model`'s rows during a build."""
    return TEMP_PREFIX + model


def refs_of(sql: str) -> set[str]:
    """The models `sql` refers to with `{{ ref('…') }}`."""
    return {name for call, name in _CALL.findall(sql) if call == "ref"}


def sources_of(sql: str) -> set[str]:
    """The raw tables `sql` reads with `{{ source('…') }}`."""
    return {name for call, name in _CALL.findall(sql) if call == "source"}


@dataclass(frozen=True)
class RawTableShape:
    """What the warehouse holds for one raw table: whether it exists and its column names."""

    exists: bool
    columns: frozenset[str]


def source_sql(table: str, raw_schema: str, shape: RawTableShape) -> str:
    """A subquery over the raw table with the declared columns (typed NULL where absent)."""
    if table not in RAW_TABLES:
        raise KeyError(f"unknown raw table {table!r}; known: {sorted(RAW_TABLES)}")
    spec = RAW_TABLES[table]
    wanted: list[tuple[str, str]] = []
    for col in spec.columns:
        wanted.append((col.name, SQL_TYPES[col.kind]))
        if col.kind == "money":
            wanted.append((col.name + VARIANT_TEXT_SUFFIX, "TEXT"))
    if not shape.exists:
        cols = ", ".join(f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in wanted)
        return f"(SELECT {cols} WHERE 1 = 0)"
    cols = ", ".join(
        name if name in shape.columns else f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in wanted
    )
    return f"(SELECT {cols} FROM {raw_schema}.{table})"


def render(
    sql: str,
    *,
    source: Callable[[str], str],
    ref: Callable[[str], str] | None = None,
    mart: Callable[[str], str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> str:
    """Replace every template call in `sql`; an unknown name is an error naming it."""

    def replace(match: re.Match) -> str:
        call, name = match.group(1), match.group(2)
        if call == "source":
            return source(name)
        if call == "ref":
            if ref is None:
                raise ValueError(f"ref('{name}') is not available here")
            return ref(name)
        if call == "mart":
            if mart is None:
                raise ValueError(f"mart('{name}') is not available here")
            return mart(name)
        if variables is None or name not in variables:
            raise KeyError(f"unknown var('{name}'); known: {sorted(variables or {})}")
        return variables[name]

    rendered = _CALL.sub(replace, sql)
    leftover = re.search(r"\{\{.*?\}\}", rendered)
    if leftover:
        raise ValueError(f"unrecognised template call {leftover.group(0)!r}")
    return rendered
