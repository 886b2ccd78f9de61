"""Fixtures for the checks' tests: a warehouse (DuckDB in memory, or Postgres in schemas of its
own that are dropped afterwards) with clean raw data, and a helper that runs the checks."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checks import CheckReport, CheckSettings, run_checks
from tests.checks.checkdata import load_raw
from tests.transforms import pg_slots
from transforms import ReconciliationSettings, build_marts
from transforms.warehouse import Warehouse

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
# the clock the tests run at: a day after the clean data's newest payment update
NOW = dt.datetime(2024, 11, 8, 0, 0, tzinfo=dt.UTC)


@dataclass
class Env:
    """A warehouse and the two schemas the checks read."""

    warehouse: Warehouse
    raw: str
    marts: str

    def sql(self, *statements: str) -> None:
        """Run statements; `{raw}` and `{marts}` stand for the schemas."""
        for s in statements:
            self.warehouse.execute(s.format(raw=self.raw, marts=self.marts))

    def build(self) -> None:
        """(Re)build the marts from the raw tables, as of NOW."""
        build_marts(self.warehouse, raw_schema=self.raw, marts_schema=self.marts,
                    settings=ReconciliationSettings(as_of=NOW), full_refresh=True)

    def check(self, **settings: Any) -> CheckReport:
        """Run the checks (no Data Docs, clock pinned to NOW unless told otherwise)."""
        settings.setdefault("docs_dir", None)
        settings.setdefault("now", NOW)
        return run_checks(
            self.warehouse, raw_schema=self.raw, marts_schema=self.marts,
            settings=CheckSettings(**settings),
        )


def _duckdb_env() -> Env:
    # a file, not memory: dbt builds the marts and opens the database itself
    folder = Path(tempfile.mkdtemp(prefix="checks-test-"))
    return Env(Warehouse.duckdb(str(folder / "warehouse.duckdb")), "instamojo_raw", "instamojo")


def _postgres_env() -> Env:
    # schemas named by this process and a slot, reused once dropped: dbt parses the project
    # once per set of schema names (seconds), not once per test
    slot, name = pg_slots.take("chk")
    env = Env(Warehouse.postgres(PG_DSN), f"{name}_raw", f"{name}_marts")
    env.slot = slot
    for schema in (env.raw, env.marts, f"{env.marts}_staging"):  # left over by a killed run
        env.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return env



def _drop(env: Env) -> None:
    if env.warehouse.dialect == "postgres":
        for schema in (env.raw, env.marts, f"{env.marts}_staging"):
            env.warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg_slots.give_back(getattr(env, "slot", -1))
    env.warehouse.close()
    path = env.warehouse.duckdb_path
    if path and Path(path).parent.name.startswith("checks-test-"):
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def _clean(env: Env) -> Env:
    load_raw(env.warehouse.connection, env.raw)
    env.build()
    return env


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_env(request, tmp_path):
    """Clean raw data and its marts on DuckDB (a copy of a file built once), then on Postgres."""
    if request.param == "duckdb":
        path = tmp_path / "warehouse.duckdb"
        shutil.copyfile(request.getfixturevalue("_clean_duckdb_file"), path)
        env = Env(Warehouse.duckdb(str(path)), "instamojo_raw", "instamojo")
    else:
        env = _clean(_postgres_env())
    try:
        yield env
    finally:
        _drop(env)


@pytest.fixture(scope="session")
def _clean_duckdb_file(tmp_path_factory) -> Path:
    """Clean raw data and its marts, built once, in a DuckDB file the `duck` fixture copies."""
    # named like every copy, so dbt's parse of the project serves them all
    path = tmp_path_factory.mktemp("checks") / "warehouse.duckdb"
    env = Env(Warehouse.duckdb(str(path)), "instamojo_raw", "instamojo")
    _clean(env)
    env.warehouse.close()
    return path


@pytest.fixture
def duck(_clean_duckdb_file, tmp_path) -> Env:
    """Clean raw data and its marts on DuckDB (a private copy of a file built once)."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(_clean_duckdb_file, path)
    env = Env(Warehouse.duckdb(str(path)), "instamojo_raw", "instamojo")
    try:
        yield env
    finally:
        _drop(env)


@pytest.fixture
def pg() -> Env:
    """Clean raw data and its marts on Postgres, in schemas of its own."""
    env = _postgres_env()
    try:
        yield _clean(env)
    finally:
        _drop(env)
