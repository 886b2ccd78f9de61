"""Rebuilds are atomic for readers: a reader on a second connection, querying while a rebuild is
paused half-way through replacing the marts, sees the old marts or the new ones, never a mix; a
rebuild that fails half-way leaves the old marts as they were."""

from __future__ import annotations

import threading
import uuid

import duckdb
import psycopg2
import pytest

from tests.raw_fixtures import create_raw_tables
from tests.transforms import cases
from tests.transforms.conftest import PG_DSN, Env, drop_env
from transforms import ReconciliationSettings, build_marts
from transforms.warehouse import Warehouse

# one statement, so the reader's view of several marts is a single snapshot
READER_SQL = (
    "SELECT (SELECT COUNT(*) FROM {m}.payments_reconciled), (SELECT COUNT(*) FROM {m}.payout_reconciliation), "
    "(SELECT COUNT(*) FROM {m}.order_reconciliation), (SELECT COUNT(*) FROM {m}.daily_settlement_summary)"
)
SETTINGS = ReconciliationSettings(as_of=cases.ist(2024, 3, 31))


class PausingWarehouse(Warehouse):
    """Runs statements like Warehouse, but stops after the first one starting with `pause_after`
    until told to resume (or raises there, to make the build fail half-way)."""

    def __init__(self, inner: Warehouse, pause_after: str, *, fail: bool = False) -> None:
        super().__init__(inner.connection, inner.dialect)
        self.pause_after = pause_after
        self.fail = fail
        self.paused = threading.Event()
        self.resume = threading.Event()

    def execute(self, sql, params=None):
        super().execute(sql, params)
        if sql.startswith(self.pause_after) and not self.paused.is_set():
            self.paused.set()
            if self.fail:
                raise RuntimeError("simulated failure half-way through publishing the marts")
            if not self.resume.wait(60):
                raise RuntimeError("the test never resumed the build")


def _load_old_and_build(env: Env) -> None:
    create_raw_tables(env.warehouse.connection, env.raw)
    cases.orders_and_statuses(env, "m1")
    build_marts(env.warehouse, raw_schema=env.raw, marts_schema=env.marts, settings=SETTINGS)
    # new raw data for the next build: another merchant with more of everything
    cases.held_then_released(env, "m2")
    cases.order_overpaid(env, "m2")


def _state(conn_query) -> tuple:
    return tuple(int(v) for v in conn_query())


def _run_reader_during_paused_rebuild(env: Env, reader) -> tuple[tuple, tuple, tuple, list]:
    """Old state, what the reader saw mid-rebuild, new state, errors in either thread."""
    old = reader()
    writer = PausingWarehouse(env.warehouse, f"INSERT INTO {env.marts}.payout_reconciliation")
    errors: list[BaseException] = []

    def build():
        try:
            build_marts(writer, raw_schema=env.raw, marts_schema=env.marts, settings=SETTINGS)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    seen: list[tuple] = []

    def read():
        try:
            seen.append(reader())
        except BaseException as exc:
            errors.append(exc)

    build_thread = threading.Thread(target=build)
    build_thread.start()
    assert writer.paused.wait(60), f"the build never reached the publish step: {errors}"
    # payments_reconciled and payout_reconciliation are replaced (uncommitted), the rest are not
    read_thread = threading.Thread(target=read)
    read_thread.start()
    read_thread.join(timeout=1)  # DuckDB answers at once; Postgres waits for the writer's locks
    writer.resume.set()
    build_thread.join(60)
    read_thread.join(60)
    return old, (seen[0] if seen else None), reader(), errors


def test_duckdb_reader_sees_old_marts_during_a_rebuild(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    env = Env(Warehouse.duckdb(path), "instamojo_raw", "instamojo")
    reader_conn = duckdb.connect(path)  # a second connection to the same database
    try:
        _load_old_and_build(env)
        old, seen, new, errors = _run_reader_during_paused_rebuild(
            env, lambda: _state(lambda: reader_conn.execute(READER_SQL.format(m=env.marts)).fetchone())
        )
        assert errors == []
        assert old != new
        assert seen == old  # not the new payments with the old orders
    finally:
        reader_conn.close()
        env.warehouse.close()


@pytest.mark.postgres
def test_postgres_reader_sees_old_or_new_marts_during_a_rebuild():
    suffix = uuid.uuid4().hex[:12]
    env = Env(Warehouse.postgres(PG_DSN), f"tr_{suffix}_raw", f"tr_{suffix}_marts")
    reader_conn = psycopg2.connect(PG_DSN)
    reader_conn.autocommit = True

    def reader():
        with reader_conn.cursor() as cur:
            cur.execute(READER_SQL.format(m=env.marts))
            return _state(cur.fetchone)

    try:
        _load_old_and_build(env)
        old, seen, new, errors = _run_reader_during_paused_rebuild(env, reader)
        assert errors == []  # in particular no "relation does not exist" for the reader
        assert old != new
        # DROP TABLE holds an exclusive lock until commit: the reader waits, then reads the new marts
        assert seen == new
    finally:
        reader_conn.close()
        drop_env(env)


@pytest.mark.parametrize("dialect", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_failed_rebuild_leaves_the_old_marts(dialect):
    if dialect == "duckdb":
        env = Env(Warehouse.duckdb(), "instamojo_raw", "instamojo")
    else:
        suffix = uuid.uuid4().hex[:12]
        env = Env(Warehouse.postgres(PG_DSN), f"tr_{suffix}_raw", f"tr_{suffix}_marts")
    try:
        _load_old_and_build(env)
        before = {m: env.rows(m) for m in ("payments_reconciled", "payout_reconciliation", "order_reconciliation")}
        failing = PausingWarehouse(env.warehouse, f"INSERT INTO {env.marts}.order_reconciliation", fail=True)
        with pytest.raises(RuntimeError, match="simulated failure"):
            build_marts(failing, raw_schema=env.raw, marts_schema=env.marts, settings=SETTINGS)
        after = {m: env.rows(m) for m in before}
        assert after == before
        # and the connection is usable for the next, successful, rebuild
        build_marts(env.warehouse, raw_schema=env.raw, marts_schema=env.marts, settings=SETTINGS)
        assert len(env.rows("payments_reconciled")) > len(before["payments_reconciled"])
    finally:
        drop_env(env)
