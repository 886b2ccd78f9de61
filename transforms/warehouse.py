"""A thin, dialect-aware wrapper over a DB-API connection to the warehouse (DuckDB or Postgres).

Transforms and checks talk SQL through this and nothing else, so they know neither dlt nor how
the connection was opened: `make sync` hands them the dlt pipeline's own destination connection
(`pipelines.warehouse.open_warehouse`), tests hand them a plain `duckdb` or `psycopg2` connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["duckdb", "postgres"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(kind: str, name: str) -> str:
    """Schema and table names are interpolated into SQL: accept plain identifiers only."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or len(name) > 63:
        raise ValueError(f"{kind} {name!r} is not a plain SQL identifier (letters, digits, _; max 63)")
    return name


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the raw tables are and the marts go: enough for any client (dbt, a plain DB-API
    connection) to connect on its own. Made by the pipeline from its dlt configuration
    (`pipelines.warehouse.warehouse_target`); `repr` never shows the Postgres DSN (it may hold a
    password)."""

    dialect: Dialect
    raw_schema: str
    marts_schema: str
    duckdb_path: Path | None = None  # absolute path of the DuckDB file (dialect duckdb)
    postgres_dsn: str | None = field(default=None, repr=False)  # libpq URI (dialect postgres)


class Warehouse:
    """A DuckDB or Postgres connection plus the one fact SQL needs about it: its dialect."""

    def __init__(self, connection: Any, dialect: Dialect | None = None, *, duckdb_path: str | None = None,
                 postgres_dsn: str | None = None) -> None:
        self.connection = connection
        self.dialect: Dialect = dialect or _detect_dialect(connection)
        self._in_transaction = False
        # where it was opened, so a client that connects on its own (dbt) can open the same
        self.duckdb_path = duckdb_path
        self._postgres_dsn = postgres_dsn

    @classmethod
    def duckdb(cls, path: str = ":memory:") -> Warehouse:
        """Open a DuckDB file (or an in-memory database)."""
        import duckdb

        return cls(duckdb.connect(path), "duckdb", duckdb_path=None if path.startswith(":memory:") else path)

    @classmethod
    def postgres(cls, dsn: str) -> Warehouse:
        """Open a Postgres database from a libpq DSN, e.g. `postgresql://postgres@127.0.0.1/test`."""
        import psycopg2

        conn = psycopg2.connect(dsn)
        conn.autocommit = True  # explicit transactions only, through `transaction()`
        return cls(conn, "postgres", postgres_dsn=dsn)

    def target(self, raw_schema: str, marts_schema: str) -> WarehouseTarget:
        """Where this warehouse is, for clients that connect on their own (dbt). Only for a
        warehouse opened by `duckdb(path)` on a file or by `postgres(dsn)`."""
        if self.dialect == "duckdb":
            if not self.duckdb_path:
                raise ValueError("dbt opens the DuckDB file itself: open the warehouse on a file, not in memory")
            return WarehouseTarget("duckdb", raw_schema, marts_schema, duckdb_path=Path(self.duckdb_path).resolve())
        if not self._postgres_dsn:
            raise ValueError("this Postgres warehouse was not opened from a DSN")
        return WarehouseTarget("postgres", raw_schema, marts_schema, postgres_dsn=self._postgres_dsn)

    def _cursor(self) -> Any:
        # duckdb's `connection.cursor()` opens a *second* connection with its own transaction,
        # so DuckDB statements run on the connection itself; psycopg2 needs a cursor.
        return self.connection if self.dialect == "duckdb" else self.connection.cursor()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement; commits at once unless inside `transaction()`."""
        cur = self._cursor()
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        if cur is not self.connection:
            cur.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run a query; returns (column names, rows). Money comes back as Decimal."""
        cur = self._cursor()
        try:
            cur.execute(sql, params) if params is not None else cur.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, [tuple(r) for r in cur.fetchall()]
        finally:
            if cur is not self.connection:
                cur.close()

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run a query; returns one dict per row."""
        columns, rows = self.query(sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    @property
    def placeholder(self) -> str:
        """The parameter marker of this dialect's driver (`?` for duckdb, `%s` for psycopg2)."""
        return "?" if self.dialect == "duckdb" else "%s"

    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All statements inside commit together or not at all (DDL included: both DuckDB and
        Postgres have transactional DDL), so readers see the old state or the new, never half."""
        if self._in_transaction:
            yield self
            return
        self.execute("BEGIN")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")
        finally:
            self._in_transaction = False

    def insert_many(self, table: str, width: int, rows: Iterable[Sequence[Any]], batch: int = 1000) -> None:
        """Insert rows of `width` values into `table` (a trusted name), in batches."""
        rows = list(rows)
        one = "(" + ", ".join([self.placeholder] * width) + ")"
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            params = [v for row in chunk for v in row]
            self.execute(f"INSERT INTO {table} VALUES " + ", ".join([one] * len(chunk)), params)

    def table_exists(self, schema: str, table: str) -> bool:
        _, rows = self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = "
            f"{self.placeholder} AND table_name = {self.placeholder}",
            (schema, table),
        )
        return bool(rows)

    def columns_of(self, schema: str, table: str) -> list[str]:
        """Column names of `schema.table` in table order (empty if the table does not exist)."""
        _, rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{self.placeholder} AND table_name = {self.placeholder} ORDER BY ordinal_position",
            (schema, table),
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        self.connection.close()


def _detect_dialect(connection: Any) -> Dialect:
    module = type(connection).__module__
    # duckdb >= 1.1 defines its connection class in the `_duckdb` extension module
    if module.startswith(("duckdb", "_duckdb")):
        return "duckdb"
    if module.startswith("psycopg"):
        return "postgres"
    raise TypeError(f"unsupported warehouse connection {type(connection)!r}: expected duckdb or psycopg2")
