"""What an incremental build leaves out of dbt's usual work, and that the result is the same
(docs/marts.md, "Speed"): the parsed project is kept between processes, the marts' comments are
written when a table is built whole, not again on every incremental run, and on DuckDB the rows
an incremental run appends are not copied through a temporary table first."""

from __future__ import annotations

import re

import pytest

from tests.transforms import cases
from tests.transforms.conftest import DIALECTS, drop_env, new_env
from transforms import ReconciliationSettings
from transforms import dbt as transforms_dbt
from transforms.dbt import build
from transforms.marts import MARTS

SETTINGS = ReconciliationSettings(as_of=cases.ist(2024, 3, 31))
MARTS_COMPARED = ("order_reconciliation", "payments_reconciled", "payout_reconciliation", "reconciliation_exceptions")


class StatementLog:
    """A dbt callback that keeps the SQL statements dbt ran, by model."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, str]] = []

    def __call__(self, msg) -> None:
        if msg.info.name == "SQLQuery":
            sql = re.sub(r"^\s*/\*.*?\*/\s*", "", msg.data.sql, flags=re.DOTALL)  # dbt's query comment
            self.statements.append((msg.data.node_info.node_name, sql.lower()))

    def comments(self) -> list[str]:
        return [node for node, sql in self.statements if sql.startswith("comment on")]


def _comments(env, mart: str) -> tuple[str | None, str | None]:
    """The table's comment and its last column's, as the warehouse holds them."""
    column = MARTS[mart].columns[-1]
    if env.warehouse.dialect == "duckdb":
        table = env.warehouse.query(f"SELECT comment FROM duckdb_tables() WHERE schema_name = '{env.marts}' "
                                    f"AND table_name = '{mart}'")[1]
        col = env.warehouse.query(f"SELECT comment FROM duckdb_columns() WHERE schema_name = '{env.marts}' "
                                  f"AND table_name = '{mart}' AND column_name = '{column.name}'")[1]
    else:
        table = env.warehouse.query(f"SELECT obj_description('{env.marts}.{mart}'::regclass, 'pg_class')")[1]
        col = env.warehouse.query(
            f"SELECT col_description('{env.marts}.{mart}'::regclass, {len(MARTS[mart].columns)})")[1]
    return table[0][0], col[0][0]


def _target(env):
    return env.warehouse.target(env.raw, env.marts)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_incremental_build_keeps_the_comments_without_writing_them_again(dialect, tmp_path):
    env = new_env(dialect)
    try:
        env.create_raw()
        cases.orders_and_statuses(env, "m1")
        full_log = StatementLog()
        build(_target(env), SETTINGS, work_dir=tmp_path, callbacks=[full_log])
        assert "payout_reconciliation" in full_log.comments()  # the first build writes them
        expected = (MARTS["payout_reconciliation"].comment, MARTS["payout_reconciliation"].columns[-1].description)
        assert _comments(env, "payout_reconciliation") == expected

        cases.held_then_released(env, "m2")
        incremental_log = StatementLog()
        report = build(_target(env), SETTINGS, changed_merchants=["m2"], work_dir=tmp_path,
                       callbacks=[incremental_log])
        assert not report.full_refresh and report.rebuilt_merchants == ("m2",)
        assert [node for node, sql in incremental_log.statements if "payout_reconciliation" in node]
        assert incremental_log.comments() == []
        if dialect == "duckdb":  # the appended rows come from a view, not a copy in a temporary table
            created = [sql.split(" as ")[0] for node, sql in incremental_log.statements
                       if node == "payout_reconciliation" and sql.startswith("create")]
            assert len(created) == 1 and created[0].startswith("create temporary view"), created
        assert _comments(env, "payout_reconciliation") == expected

        refresh_log = StatementLog()
        build(_target(env), SETTINGS, full_refresh=True, work_dir=tmp_path, callbacks=[refresh_log])
        assert "payout_reconciliation" in refresh_log.comments()  # a table built whole gets them again
        assert _comments(env, "payout_reconciliation") == expected
    finally:
        drop_env(env)


def _stored_manifest(work):
    return work / "target" / transforms_dbt._PARSED_FILE


def _built_once(tmp_path, monkeypatch):
    """A DuckDB warehouse with merchant m1 built once by a process that had parsed nothing."""
    env = new_env("duckdb", tmp_path / "db")
    work = tmp_path / "dbt"
    env.create_raw()
    cases.orders_and_statuses(env, "m1")
    monkeypatch.setattr(transforms_dbt, "_MANIFESTS", {})
    build(_target(env), SETTINGS, work_dir=work)
    return env, work


def test_a_new_process_builds_from_the_stored_manifest_without_parsing(tmp_path, monkeypatch):
    env, work = _built_once(tmp_path, monkeypatch)
    try:
        assert _stored_manifest(work).is_file()

        # a new process: nothing parsed in memory; dbt's own parse files gone, so a parse would
        # have to write them again
        monkeypatch.setattr(transforms_dbt, "_MANIFESTS", {})
        for name in ("partial_parse.msgpack", "manifest.json"):
            (work / "target" / name).unlink()
        cases.held_then_released(env, "m2")
        report = build(_target(env), SETTINGS, changed_merchants=["m2"], work_dir=work)
        assert not report.full_refresh and report.rebuilt_merchants == ("m2",)
        assert not (work / "target" / "partial_parse.msgpack").exists()
        incremental = {m: env.rows(m) for m in MARTS_COMPARED}
        assert [r["merchant"] for r in incremental["payout_reconciliation"]].count("m2") > 0

        build(_target(env), SETTINGS, full_refresh=True, work_dir=work)
        assert {m: env.rows(m) for m in MARTS_COMPARED} == incremental
    finally:
        drop_env(env)


@pytest.mark.parametrize("damage", ["garbage", "other key"])
def test_a_stored_manifest_that_does_not_fit_makes_dbt_parse(tmp_path, monkeypatch, damage):
    env, work = _built_once(tmp_path, monkeypatch)
    try:
        stored = _stored_manifest(work)
        if damage == "garbage":
            stored.write_bytes(b"not a pickle")
        else:  # what another version of dbt, or another schema, would have stored
            monkeypatch.setattr(transforms_dbt, "_parse_key", lambda key: "another key")
            monkeypatch.setattr(transforms_dbt, "_MANIFESTS", {})
            build(_target(env), SETTINGS, work_dir=work, full_refresh=True)
            monkeypatch.undo()
        monkeypatch.setattr(transforms_dbt, "_MANIFESTS", {})
        (work / "target" / "partial_parse.msgpack").unlink()
        report = build(_target(env), SETTINGS, work_dir=work, full_refresh=True)
        assert (work / "target" / "partial_parse.msgpack").is_file()  # dbt parsed
        assert report.mart_rows["order_reconciliation"] > 0
        # and stored what it parsed, for the next process
        assert transforms_dbt._load_parsed(work, next(iter(transforms_dbt._MANIFESTS))) is not None
    finally:
        drop_env(env)


def test_an_incremental_run_adds_the_calendar_days_it_lacks_and_keeps_the_others(tmp_path):
    env = new_env("duckdb", tmp_path / "db")
    try:
        env.create_raw()
        cases.orders_and_statuses(env, "m1")
        build(_target(env), SETTINGS, work_dir=tmp_path / "dbt")
        days = f"{env.staging}.{transforms_dbt.CALENDAR_TABLE}"
        _, last = env.warehouse.query(f"SELECT MAX(calendar_date) FROM {days}")
        # the span grew by a day (as a later year's input would), unknown to the marts so far
        env.warehouse.execute(f"INSERT INTO {days} SELECT calendar_date + 1, is_business_day, holiday_name, "
                              f"business_day_number + 1, expected_payout_date, overdue_after_date FROM {days} "
                              f"WHERE calendar_date = (SELECT MAX(calendar_date) FROM {days})")
        report = build(_target(env), SETTINGS, changed_merchants=["m1"], work_dir=tmp_path / "dbt")
        assert not report.full_refresh
        calendar = f"{env.marts}.settlement_calendar"
        counts = env.warehouse.query(f"SELECT COUNT(*), COUNT(DISTINCT calendar_date), MAX(calendar_date) FROM {calendar}")[1]
        assert counts == env.warehouse.query(f"SELECT COUNT(*), COUNT(*), MAX(calendar_date) FROM {days}")[1]
        assert counts[0][2] > last[0][0]
        assert {m.name: m.rows for m in report.models}["settlement_calendar"] == 1  # the day it appended
    finally:
        drop_env(env)
