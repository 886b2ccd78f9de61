"""Fixtures for the transforms' tests: a warehouse (a DuckDB file, or Postgres in uniquely named
schemas dropped afterwards) with empty raw tables, helpers to build the marts with dbt and read
them, and one build of every hand-computed case per database, shared by the tests that read it
(dbt takes seconds per build)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.raw_fixtures import create_raw_tables, insert_rows
from tests.transforms import pg_slots
from tests.transforms.cases import ALL_SCENARIOS, AS_OF, load_scenarios
from transforms import BuildReport, ReconciliationSettings, build_marts
from transforms.marts import MARTS
from transforms.warehouse import Warehouse

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Env:
    """A warehouse with a raw schema and a marts schema of its own."""

    warehouse: Warehouse
    raw: str
    marts: str
    tmp: Path | None = None

    @property
    def staging(self) -> str:
        return f"{self.marts}_staging"

    def create_raw(self, tables: Iterable[str] | None = None) -> None:
        """Create the raw tables (all by default, else only `tables`)."""
        create_raw_tables(self.warehouse.connection, self.raw, tables)

    def insert(self, table: str, *rows: dict) -> None:
        insert_rows(self.warehouse.connection, self.raw, table, rows)

    def sql(self, statement: str) -> None:
        """Run a statement; `{raw}` and `{marts}` stand for the schemas."""
        self.warehouse.execute(statement.format(raw=self.raw, marts=self.marts))

    def build(self, as_of: datetime | str | None = AS_OF, *, full_refresh: bool = True,
              changed_merchants=None, **settings: Any) -> BuildReport:
        """Build the marts with dbt (a full rebuild unless told otherwise)."""
        return build_marts(
            self.warehouse,
            raw_schema=self.raw,
            marts_schema=self.marts,
            settings=ReconciliationSettings(as_of=as_of, **settings),
            full_refresh=full_refresh,
            changed_merchants=changed_merchants,
        )

    def rows(self, mart: str, where: str = "1 = 1", merchant: str | None = None) -> list[dict[str, Any]]:
        """A mart's rows in key order (`where` may use {raw}/{marts}), of one merchant if given."""
        key = ", ".join(MARTS[mart].key)
        where = where.format(raw=self.raw, marts=self.marts)
        if merchant is not None:
            where = f"({where}) AND merchant = '{merchant}'"
        return self.warehouse.query_dicts(f"SELECT * FROM {self.marts}.{mart} WHERE {where} ORDER BY {key}")

    def row(self, mart: str, **key: Any) -> dict[str, Any]:
        """The one row of `mart` with these key values."""
        ph = self.warehouse.placeholder
        cond = " AND ".join(f"{k} = {ph}" for k in key)
        found = self.warehouse.query_dicts(f"SELECT * FROM {self.marts}.{mart} WHERE {cond}", tuple(key.values()))
        assert len(found) == 1, f"{mart} {key}: expected one row, found {len(found)}"
        return found[0]

    def exceptions(self, merchant: str | None = None) -> list[dict[str, Any]]:
        return self.rows("reconciliation_exceptions", merchant=merchant)

    def exception_summary(self, merchant: str | None = None) -> list[tuple]:
        """(type, entity id, amount at stake) of every exception (of one merchant), sorted."""
        return sorted(
            (e["exception_type"], e["entity_id"], e["amount_at_stake"]) for e in self.exceptions(merchant)
        )


    def of(self, merchant: str) -> MerchantView:
        """This warehouse's marts as one merchant sees them."""
        return MerchantView(self, merchant)


@dataclass
class MerchantView:
    """`Env`'s readers restricted to one merchant (a scenario of the shared build)."""

    env: Env
    merchant: str

    def rows(self, mart: str, where: str = "1 = 1") -> list[dict[str, Any]]:
        return self.env.rows(mart, where, merchant=self.merchant)

    def row(self, mart: str, **key: Any) -> dict[str, Any]:
        if "merchant" in MARTS[mart].key:
            key = {"merchant": self.merchant, **key}
        return self.env.row(mart, **key)

    def exceptions(self) -> list[dict[str, Any]]:
        return self.env.exceptions(self.merchant)

    def exception_summary(self) -> list[tuple]:
        return self.env.exception_summary(self.merchant)


def duckdb_env(tmp: Path | None = None) -> Env:
    """A DuckDB file (dbt opens it itself) in `tmp` or a new temporary folder. Every test file
    has the same name, so dbt's parse of the project is reused between them."""
    folder = Path(tmp or tempfile.mkdtemp(prefix="transforms-test-"))
    folder.mkdir(parents=True, exist_ok=True)
    return Env(Warehouse.duckdb(str(folder / "warehouse.duckdb")), "instamojo_raw", "instamojo", folder)


def postgres_env(prefix: str = "tr") -> Env:
    slot, name = pg_slots.take(prefix)  # schemas reused by later tests: dbt parses once per slot
    env = Env(Warehouse.postgres(PG_DSN), f"{name}_raw", f"{name}_marts")
    env.slot = slot
    for schema in (env.raw, env.marts, env.staging):  # left over by a killed run of this pid
        env.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return env


def drop_env(env: Env) -> None:
    if env.warehouse.dialect == "postgres":
        for schema in (env.raw, env.marts, env.staging):
            env.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg_slots.give_back(getattr(env, "slot", -1))
    env.warehouse.close()
    if env.tmp is not None and env.tmp.name.startswith("transforms-test-"):
        import shutil

        shutil.rmtree(env.tmp, ignore_errors=True)


def new_env(dialect: str, tmp: Path | None = None) -> Env:
    return duckdb_env(tmp) if dialect == "duckdb" else postgres_env()


DIALECTS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DIALECTS)
def env(request, tmp_path):
    """Empty raw tables on DuckDB, then on Postgres."""
    e = new_env(request.param, tmp_path)
    try:
        e.create_raw()
        yield e
    finally:
        drop_env(e)


@pytest.fixture
def bare_env(tmp_path):
    """DuckDB with an empty raw schema and no raw tables (tests create what they need)."""
    e = duckdb_env(tmp_path)
    e.warehouse.execute(f"CREATE SCHEMA {e.raw}")
    yield e
    drop_env(e)


def _cases(dialect: str):
    env = new_env(dialect)
    try:
        env.create_raw()
        load_scenarios(env, ALL_SCENARIOS)
        env.report = env.build(as_of="latest_sync")
        yield env
    finally:
        drop_env(env)


@pytest.fixture(scope="session")
def cases_duckdb():
    """Every hand-computed scenario (one merchant each) built once on DuckDB; read only."""
    yield from _cases("duckdb")


@pytest.fixture(scope="session")
def cases_postgres():
    """The same on Postgres."""
    yield from _cases("postgres")


@pytest.fixture(params=DIALECTS)
def cases(request):
    """Every hand-computed scenario built once per database (read only)."""
    return request.getfixturevalue(f"cases_{request.param}")


def _variants(dialect: str):
    """Two more builds: payout tolerance 10.00 with no overdue grace (and the raw duplicates,
    which break the integrity tests on purpose), and payout tolerance 9.99 with "now" = each
    merchant's latest activity."""
    built = {}
    try:
        for name, merchants, settings in (
            ("tolerance_10_no_grace", ["residual", "overdue_0308", "duplicates"],
             {"as_of": "latest_sync", "payout_tolerance": Decimal("10.00"), "overdue_grace_business_days": 0}),
            ("tolerance_9_99_latest_activity", ["residual", "activity_2030"],
             {"as_of": "latest_activity", "payout_tolerance": Decimal("9.99")}),
        ):
            env = built[name] = new_env(dialect)
            env.create_raw()
            load_scenarios(env, merchants)
            env.build(**settings)
        yield built
    finally:
        for env in built.values():
            drop_env(env)


@pytest.fixture(scope="session")
def variants_duckdb():
    yield from _variants("duckdb")


@pytest.fixture(scope="session")
def variants_postgres():
    yield from _variants("postgres")


@pytest.fixture
def variants(cases, request):
    """The builds with other settings, on the database of `cases` (read only)."""
    return request.getfixturevalue(f"variants_{cases.warehouse.dialect}")
