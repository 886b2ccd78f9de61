"""Fixtures for the transforms' tests: a warehouse (DuckDB in memory, or Postgres in uniquely
named schemas dropped afterwards) with empty raw tables, and helpers to build and read marts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import pytest

from tests.raw_fixtures import create_raw_tables, insert_rows
from tests.transforms.rawdata import ist
from transforms import BuildReport, ReconciliationSettings, build_marts
from transforms.marts import MARTS
from transforms.warehouse import Warehouse

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
# the default "now" of hand-computed cases: far enough after their payments that none awaits
AS_OF = ist(2024, 12, 31, 12, 0)


@dataclass
class Env:
    """A warehouse with a raw schema and a marts schema of its own."""

    warehouse: Warehouse
    raw: str
    marts: str

    def create_raw(self, tables: Iterable[str] | None = None) -> None:
        """Create the raw tables (all by default, else only `tables`)."""
        create_raw_tables(self.warehouse.connection, self.raw, tables)

    def insert(self, table: str, *rows: dict) -> None:
        insert_rows(self.warehouse.connection, self.raw, table, rows)

    def sql(self, statement: str) -> None:
        """Run a statement; `{raw}` and `{marts}` stand for the schemas."""
        self.warehouse.execute(statement.format(raw=self.raw, marts=self.marts))

    def build(self, as_of: datetime | None = AS_OF, **settings: Any) -> BuildReport:
        return build_marts(
            self.warehouse,
            raw_schema=self.raw,
            marts_schema=self.marts,
            settings=ReconciliationSettings(as_of=as_of, **settings),
        )

    def rows(self, mart: str, where: str = "1 = 1") -> list[dict[str, Any]]:
        """A mart's rows in key order (`where` may use {raw}/{marts})."""
        key = ", ".join(MARTS[mart].key)
        return self.warehouse.query_dicts(
            f"SELECT * FROM {self.marts}.{mart} WHERE {where.format(raw=self.raw, marts=self.marts)} ORDER BY {key}"
        )

    def row(self, mart: str, **key: Any) -> dict[str, Any]:
        """The one row of `mart` with these key values."""
        ph = self.warehouse.placeholder
        cond = " AND ".join(f"{k} = {ph}" for k in key)
        found = self.warehouse.query_dicts(f"SELECT * FROM {self.marts}.{mart} WHERE {cond}", tuple(key.values()))
        assert len(found) == 1, f"{mart} {key}: expected one row, found {len(found)}"
        return found[0]

    def exceptions(self) -> list[dict[str, Any]]:
        return self.rows("reconciliation_exceptions")

    def exception_summary(self) -> list[tuple]:
        """(type, entity id, amount at stake) of every exception, sorted."""
        return sorted(
            (e["exception_type"], e["entity_id"], e["amount_at_stake"]) for e in self.exceptions()
        )


def duckdb_env() -> Env:
    return Env(Warehouse.duckdb(), "instamojo_raw", "instamojo")


def postgres_env() -> Env:
    suffix = uuid.uuid4().hex[:12]
    return Env(Warehouse.postgres(PG_DSN), f"tr_{suffix}_raw", f"tr_{suffix}_marts")


def drop_env(env: Env) -> None:
    if env.warehouse.dialect == "postgres":
        for schema in (env.raw, env.marts):
            env.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    env.warehouse.close()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request):
    """Empty raw tables on DuckDB, then on Postgres."""
    e = duckdb_env() if request.param == "duckdb" else postgres_env()
    try:
        e.create_raw()
        yield e
    finally:
        drop_env(e)


@pytest.fixture
def bare_env(request):
    """DuckDB with an empty raw schema and no raw tables (tests create what they need)."""
    e = duckdb_env()
    e.warehouse.execute(f"CREATE SCHEMA {e.raw}")
    yield e
    drop_env(e)
