"""What a reader on a second connection sees while dbt rebuilds the marts (docs/marts.md,
"Readers during a build"): every mart changes in one transaction of its own, so a reader sees each
mart whole, old or new; it never sees a merchant's old rows deleted without the new ones. Marts
commit at different moments, so during a run some may already hold the new rows and others not yet.
A model that fails leaves its mart as it was, and the next run rebuilds the same merchants."""

from __future__ import annotations

import re
import threading

import pytest

from tests.transforms import cases
from tests.transforms.conftest import DIALECTS, drop_env, new_env
from transforms import DbtFailed, ReconciliationSettings
from transforms.dbt import build

SETTINGS = ReconciliationSettings(as_of=cases.ist(2024, 3, 31))
MARTS_READ = ("order_reconciliation", "payments_reconciled", "payout_reconciliation", "daily_settlement_summary")


class StopBeforeInsert:
    """A dbt callback: when the run is about to insert the rebuilt rows into `model` (its
    DELETE of them already ran, in the same transaction), wait until told to go on, or fail."""

    def __init__(self, model: str, *, fail: bool = False) -> None:
        self.model, self.fail = model, fail
        self.reached, self.go_on = threading.Event(), threading.Event()

    def __call__(self, msg) -> None:
        if msg.info.name != "SQLQuery" or self.reached.is_set():
            return
        sql = re.sub(r"^\s*/\*.*?\*/\s*", "", msg.data.sql, flags=re.DOTALL)  # dbt's query comment
        if msg.data.node_info.node_name == self.model and sql.lower().startswith("insert into"):
            self.reached.set()
            if self.fail:
                raise RuntimeError("simulated failure in the middle of a mart's rebuild")
            if not self.go_on.wait(120):
                raise RuntimeError("the test never let the build go on")


def _old_state(env):
    """m1 and m2 built; then m2 gets more raw rows (its payouts R and an order O4)."""
    env.create_raw()
    cases.orders_and_statuses(env, "m1")
    cases.held_then_released(env, "m2")
    build(_target(env), SETTINGS)
    cases.order_overpaid(env, "m2")


def _target(env):
    return env.warehouse.target(env.raw, env.marts)


def _counts(reader, env) -> dict[str, int]:
    return {m: int(reader.query(f"SELECT COUNT(*) FROM {env.marts}.{m}")[1][0][0]) for m in MARTS_READ}


def _reader(env):
    from transforms.warehouse import Warehouse

    if env.warehouse.dialect == "duckdb":
        return Warehouse.duckdb(env.warehouse.duckdb_path)  # another connection, same database
    return Warehouse.postgres(env.warehouse._postgres_dsn)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_reader_sees_every_mart_whole_during_a_build(dialect):
    env = new_env(dialect)
    reader = None
    try:
        _old_state(env)
        reader = _reader(env)
        old = _counts(reader, env)
        old_m2_payouts = reader.query(
            f"SELECT payout_id FROM {env.marts}.payout_reconciliation WHERE merchant = 'm2' ORDER BY 1")[1]
        stop = StopBeforeInsert("payout_reconciliation")
        errors: list[BaseException] = []

        def run():
            try:
                # one model at a time, so which marts are done when it stops is known
                build(_target(env), SETTINGS, changed_merchants=["m2"], callbacks=[stop], threads=1)
            except BaseException as exc:  # noqa: BLE001  (reported by the test)
                errors.append(exc)

        writer = threading.Thread(target=run)
        writer.start()
        assert stop.reached.wait(120), f"the build never reached payout_reconciliation: {errors}"
        try:
            # payout_reconciliation: m2's rows deleted, not yet committed → still the old ones
            during = _counts(reader, env)
            m2_payouts = reader.query(
                f"SELECT payout_id FROM {env.marts}.payout_reconciliation WHERE merchant = 'm2' ORDER BY 1")[1]
        finally:
            stop.go_on.set()
            writer.join(180)
        assert errors == []
        new = _counts(reader, env)
        assert old != new
        assert m2_payouts == old_m2_payouts == [("A",), ("B",)]
        assert during["payout_reconciliation"] == old["payout_reconciliation"]
        # the marts built before it are already new (each committed on its own), the later ones old
        assert during["payments_reconciled"] == new["payments_reconciled"]
        assert during["daily_settlement_summary"] == old["daily_settlement_summary"] or (
            old["daily_settlement_summary"] == new["daily_settlement_summary"])
        for mart in MARTS_READ:
            assert during[mart] in (old[mart], new[mart]), mart
    finally:
        if reader is not None:
            reader.close()
        drop_env(env)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_failed_build_leaves_the_failed_mart_and_the_next_build_catches_up(dialect):
    env = new_env(dialect)
    try:
        _old_state(env)
        before = env.rows("order_reconciliation")
        with pytest.raises(DbtFailed, match="simulated failure"):
            build(_target(env), SETTINGS, changed_merchants=["m2"],
                  callbacks=[StopBeforeInsert("order_reconciliation", fail=True)])
        # its DELETE of m2's orders was rolled back with it
        assert env.rows("order_reconciliation") == before
        # the merchants stay listed: the next run (nothing new synced) rebuilds m2 everywhere
        report = build(_target(env), SETTINGS, changed_merchants=[])
        assert report.rebuilt_merchants == ("m2",)
        incremental = {m: env.rows(m) for m in MARTS_READ + ("reconciliation_exceptions",)}
        assert [r["order_id"] for r in incremental["order_reconciliation"] if r["merchant"] == "m2"] == ["O4"]
        build(_target(env), SETTINGS, full_refresh=True)
        assert {m: env.rows(m) for m in incremental} == incremental
    finally:
        drop_env(env)
