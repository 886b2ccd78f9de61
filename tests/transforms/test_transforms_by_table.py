"""Incremental by raw table (macros/incremental.sql): a model rebuilds a merchant only when a raw
table it reads from changed for that merchant; the marts still equal a full rebuild, row for row.
How a build learns which tables changed: from the sync (merchant -> tables), from the raw rows'
`_synced_at`, or from a listing of an earlier version (merchants only: every table)."""

from __future__ import annotations

import pytest

from tests.transforms import cases
from tests.transforms.conftest import DIALECTS, drop_env, new_env
from transforms import ReconciliationSettings
from transforms.dbt import REBUILD_TABLE, build, note_changed
from transforms.marts import MARTS

SETTINGS = ReconciliationSettings(as_of=cases.ist(2024, 3, 31))
# the models that read no raw table but payments', and those that read only the order tables
PAYMENTS_ONLY = ("stg_instamojo__payments", "int_instamojo__payout_payment_totals")
ORDERS_ONLY = ("stg_instamojo__orders", "stg_instamojo__order_payments", "int_instamojo__order_payment_totals",
               "int_instamojo__payment_orders", "order_reconciliation")


def _target(env):
    return env.warehouse.target(env.raw, env.marts)


def _two_merchants_built(dialect, tmp_path):
    env = new_env(dialect, tmp_path)
    env.create_raw()
    for m in ("m1", "m2"):
        cases.orders_and_statuses(env, m)  # per merchant: 2 orders, 4 nested payments, 5 payments, 2 payouts
    assert build(_target(env), SETTINGS, work_dir=tmp_path / "dbt").full_refresh
    return env


def _written(report) -> dict[str, int | None]:
    return {m.name: m.rows for m in report.models}


def _assert_equals_a_full_rebuild(env, tmp_path) -> None:
    incremental = {m: env.rows(m) for m in MARTS}
    assert build(_target(env), SETTINGS, work_dir=tmp_path / "dbt", full_refresh=True).full_refresh
    assert {m: env.rows(m) for m in MARTS} == incremental


def _listed(env) -> set[tuple]:
    return set(env.warehouse.query(f"SELECT merchant, raw_table FROM {env.staging}.{REBUILD_TABLE}")[1])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_model_rebuilds_only_the_merchants_whose_input_tables_changed(dialect, tmp_path):
    env = _two_merchants_built(dialect, tmp_path)
    try:
        # m1: a new pending payment, nothing else; m2: its order O2's failed nested payment now
        # reads Success and the order Fully Paid (a sync writes the order with its nested rows)
        env.insert("payments", cases.payment("P14", "50.00", "0.00", "0.00", cases.ist(2024, 3, 6, 9), status=None,
                                             merchant="m1"))
        env.sql("UPDATE {raw}.order_payments SET status = 'Success' WHERE merchant = 'm2' AND payment_id = 'P12'")
        env.sql("UPDATE {raw}.orders SET order_status = 'Fully Paid' WHERE merchant = 'm2' AND id = 'O2'")

        report = build(_target(env), SETTINGS, work_dir=tmp_path / "dbt",
                       changed_merchants={"m1": ["payments"], "m2": ["orders", "order_payments"]})
        assert not report.full_refresh and report.rebuilt_merchants == ("m1", "m2")
        written = _written(report)
        assert written["stg_instamojo__payouts"] == 0  # neither merchant's payouts changed
        for model in PAYMENTS_ONLY:
            assert written[model] == {"stg_instamojo__payments": 6, "int_instamojo__payout_payment_totals": 2}[model]
        assert written["stg_instamojo__orders"] == 2 and written["order_reconciliation"] == 2  # m2's only
        assert written["stg_instamojo__order_payments"] == 4
        assert written["payments_reconciled"] == 11  # both: it reads payments and the order tables
        assert env.row("order_reconciliation", merchant="m2", order_id="O2")["api_order_status"] == "Fully Paid"
        assert _listed(env) == set()  # what the build covered is no longer listed
        _assert_equals_a_full_rebuild(env, tmp_path)
    finally:
        drop_env(env)


def test_the_tables_found_by_synced_at_decide_which_models_rebuild(tmp_path):
    env = new_env("duckdb", tmp_path)
    try:
        env.create_raw()
        for m in ("m1", "m2"):
            cases.orders_and_statuses(env, m)
            cases.synced_at(env, m, cases.ist(2024, 3, 20))
        build(_target(env), SETTINGS, work_dir=tmp_path / "dbt")
        # a later sync brought m2 one payout and nothing else
        env.insert("payouts", {**cases.payout("G", cases.ist(2024, 3, 9, 12), paid="0.00", sales="0.00", fee="0.00",
                                              tax="0.00", merchant="m2"), "_synced_at": cases.ist(2024, 3, 21)})
        report = build(_target(env), SETTINGS, work_dir=tmp_path / "dbt")
        assert (report.full_refresh, report.rebuilt_merchants) == (False, ("m2",)), report.reason
        written = _written(report)
        assert written["stg_instamojo__payouts"] == 3 and written["payout_reconciliation"] == 3
        assert all(written[m] == 0 for m in PAYMENTS_ONLY + ORDERS_ONLY), written
        assert env.row("payout_reconciliation", merchant="m2", payout_id="G")
        _assert_equals_a_full_rebuild(env, tmp_path)
    finally:
        drop_env(env)


def test_note_changed_lists_the_tables_the_marts_read(tmp_path):
    env = _two_merchants_built("duckdb", tmp_path)
    try:
        # tables the marts do not read need no rebuild; a plain list means every table
        note_changed(_target(env), {"m1": ["products", "user_info"], "m2": ["payments", "order_items"]})
        assert _listed(env) == {("m2", "payments")}
        note_changed(_target(env), ["m1"])
        assert _listed(env) == {("m2", "payments"), ("m1", None)}
        with pytest.raises(TypeError, match="the string 'm1'"):
            note_changed(_target(env), "m1")

        report = build(_target(env), SETTINGS, work_dir=tmp_path / "dbt", changed_merchants=[])
        assert report.rebuilt_merchants == ("m1", "m2")
        written = _written(report)
        assert written["stg_instamojo__payments"] == 10  # both
        assert written["stg_instamojo__orders"] == 2 and written["stg_instamojo__payouts"] == 2  # m1's: every table
        assert _listed(env) == set()
    finally:
        drop_env(env)


def test_a_listing_of_merchants_only_from_an_earlier_version_rebuilds_every_model(tmp_path):
    env = _two_merchants_built("duckdb", tmp_path)
    try:
        env.sql(f"DROP TABLE {env.staging}.{REBUILD_TABLE}")
        env.sql(f"CREATE TABLE {env.staging}.{REBUILD_TABLE} (merchant TEXT)")
        env.sql(f"INSERT INTO {env.staging}.{REBUILD_TABLE} VALUES ('m1')")
        env.insert("payments", cases.payment("P14", "50.00", "0.00", "0.00", cases.ist(2024, 3, 6, 9), status=None,
                                             merchant="m1"))

        report = build(_target(env), SETTINGS, work_dir=tmp_path / "dbt", changed_merchants=[])
        assert report.rebuilt_merchants == ("m1",)
        written = _written(report)
        assert written["stg_instamojo__payments"] == 6 and written["stg_instamojo__payouts"] == 2
        assert all(written[m] > 0 for m in ORDERS_ONLY), written
        assert "raw_table" in env.warehouse.columns_of(env.staging, REBUILD_TABLE) and _listed(env) == set()
        assert [r["payment_id"] for r in env.rows("payments_reconciled", merchant="m1")].count("P14") == 1
    finally:
        drop_env(env)
