"""Build raw tables by hand, for tests that need exact, hand-computed raw data.

The DDL comes from `sources.instamojo.schema` (the same declaration that gives dlt its column
hints), so hand-made raw tables have the columns and types a real sync writes. Rows are dicts;
columns left out are NULL; `merchant` defaults to "m1".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sources.instamojo.schema import RAW_TABLES


def create_raw_tables(conn: Any, schema: str, tables: Iterable[str] | None = None) -> None:
    """Create `schema` and the raw tables in it (all by default) on a DB-API connection
    (duckdb or psycopg2)."""
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for name in tables or RAW_TABLES:
        cur.execute(RAW_TABLES[name].create_table_sql(schema))
    _commit(conn)


def insert_rows(conn: Any, schema: str, table: str, rows: Iterable[dict]) -> None:
    """Insert `rows` into `schema.table`; unknown keys are an error (catches typos in fixtures)."""
    spec = RAW_TABLES[table]
    names = [c.name for c in spec.columns]
    placeholders = ", ".join(["%s" if _is_psycopg(conn) else "?"] * len(names))
    sql = f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({placeholders})"
    cur = conn.cursor()
    for row in rows:
        unknown = set(row) - set(names)
        if unknown:
            raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        values = {"merchant": "m1", **row}
        cur.execute(sql, [values.get(n) for n in names])
    _commit(conn)


def _is_psycopg(conn: Any) -> bool:
    return type(conn).__module__.startswith("psycopg")


def _commit(conn: Any) -> None:
    if _is_psycopg(conn):
        conn.commit()
