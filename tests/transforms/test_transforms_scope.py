"""Raw tables that are missing or empty (scopes a merchant did not grant), the default as-of
moment, settings parsing, and the settlement calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from tests.transforms.rawdata import ist, payment
from transforms import ReconciliationSettings
from transforms.calendar import expected_payout_date, settlement_calendar
from transforms.marts import MARTS


def test_only_payments_synced(bare_env):
    """No payouts or orders tables at all: payments still reconcile from their own payout field,
    no orphan exceptions (nothing to compare with), order and payout marts empty."""
    env = bare_env
    env.create_raw(["payments"])
    env.insert(
        "payments",
        payment("P1", "1000.00", "23.00", "4.14", ist(2024, 3, 4), payout="A"),
        payment("P2", "500.00", "13.00", "2.34", ist(2024, 3, 28)),
    )
    report = env.build(as_of=ist(2024, 3, 29))
    assert report.missing_raw_tables == ("order_payments", "orders", "payouts")
    p1 = env.row("payments_reconciled", payment_id="P1")
    assert (p1["settlement_state"], p1["payout_found"], p1["paid_out_at"], p1["order_id"]) == ("settled", False, None, None)
    assert env.row("payments_reconciled", payment_id="P2")["settlement_state"] == "awaiting_payout"
    assert env.rows("payout_reconciliation") == [] and env.rows("order_reconciliation") == []
    assert env.exceptions() == []
    # P1's payout date is unknown: it never counts as awaiting; P2 does from 03-28
    day = env.row("daily_settlement_summary", merchant="m1", summary_date=date(2024, 3, 28))
    assert day["awaiting_payout_amount"] == D("484.66")


def test_no_raw_tables_at_all(bare_env):
    report = bare_env.build()
    assert report.missing_raw_tables == ("order_payments", "orders", "payments", "payouts")
    assert report.exceptions_by_type == {}
    rows = report.mart_rows
    assert {m: rows[m] for m in MARTS if m != "settlement_calendar"} == {m: 0 for m in MARTS if m != "settlement_calendar"}
    assert rows["settlement_calendar"] > 0
    for mart in MARTS:
        assert bare_env.warehouse.table_exists(bare_env.marts, mart)


def test_payouts_without_payments(cases):
    """A merchant whose payments are not synced: its payouts are checked against their own
    figures only (payments_synced false), so no payments_missing noise."""
    env = cases.of("no_payments")  # held_then_released without its payments
    rows = env.rows("payout_reconciliation")
    assert [(r["payout_id"], r["payments_synced"], r["status"]) for r in rows] == [
        ("A", False, "balanced"), ("B", False, "balanced")
    ]
    assert env.exceptions() == []


def test_raw_table_missing_columns(bare_env):
    """An older raw payments table without some declared columns reads them as NULL."""
    env = bare_env
    env.sql(
        "CREATE TABLE {raw}.payments (merchant TEXT NOT NULL, id TEXT NOT NULL, status BOOLEAN, "
        "amount DECIMAL(18,2), fees DECIMAL(18,2), total_taxes DECIMAL(18,2), created_at TIMESTAMPTZ)"
    )
    env.sql("INSERT INTO {raw}.payments VALUES ('m1', 'P1', TRUE, 1000.00, 23.00, 4.14, TIMESTAMPTZ '2024-03-04 04:30:00+00')")
    env.build(as_of=ist(2024, 3, 6))
    p = env.row("payments_reconciled", payment_id="P1")
    assert (p["payout_id"], p["settlement_state"], p["net_amount"]) == (None, "awaiting_payout", D("972.86"))


def test_as_of_defaults_to_the_merchants_latest_sync(cases):
    """Without transforms.as_of, "now" is when the merchant's data was last fetched (the shared
    build uses "latest_sync", the default)."""
    assert ReconciliationSettings().as_of == "latest_sync"
    # every row fetched Fri 03-08 19:30 IST
    p14 = cases.of("sync_0308").row("payments_reconciled", payment_id="P14")
    assert (p14["as_of_date"], p14["settlement_state"]) == (date(2024, 3, 8), "awaiting_payout")
    # P16 fetched again Mon 03-11 00:30 IST
    p14 = cases.of("sync_0311").row("payments_reconciled", payment_id="P14")
    assert (p14["as_of_date"], p14["settlement_state"]) == (date(2024, 3, 11), "overdue")


def test_as_of_latest_activity(cases, variants):
    """"latest_activity": the newest event in the merchant's data (here payout G, Tue 03-12),
    for data whose clock is not the wall clock (the sandbox's)."""
    # fetched in 2030; with "latest_activity" that does not matter
    p14 = variants["tolerance_9_99_latest_activity"].of("activity_2030").row("payments_reconciled", payment_id="P14")
    assert (p14["as_of_date"], p14["settlement_state"], p14["business_days_late"]) == (date(2024, 3, 12), "overdue", 3)
    # with "latest_sync" it does
    assert cases.of("activity_2030").row("payments_reconciled", payment_id="P14")["as_of_date"] == date(2030, 1, 1)


# -- settings -----------------------------------------------------------------------------------


def test_settings_from_config_section():
    s = ReconciliationSettings.from_mapping(
        {
            "payout_tolerance": "0.05",
            "order_tolerance": 1,
            "overdue_grace_business_days": "2",
            "extra_holidays": ["2024-03-08"],
            "as_of": "2024-03-11T09:00:00+05:30",
        }
    )
    assert (s.payout_tolerance, s.order_tolerance, s.overdue_grace_business_days) == (D("0.05"), D(1), 2)
    assert s.extra_holidays == (date(2024, 3, 8),)
    assert s.as_of == datetime(2024, 3, 11, 3, 30, tzinfo=UTC)
    assert ReconciliationSettings.from_mapping(None) == ReconciliationSettings()
    assert ReconciliationSettings.from_mapping({"as_of": "latest_activity"}).as_of == "latest_activity"
    with pytest.raises(ValueError, match="latest_sync"):
        ReconciliationSettings(as_of="now")
    assert ReconciliationSettings().payout_tolerance == D("0.00")


def test_settings_from_dlt_config_honour_environment_variables(monkeypatch):
    monkeypatch.setenv("TRANSFORMS__PAYOUT_TOLERANCE", "0.10")
    monkeypatch.setenv("TRANSFORMS__AS_OF", "latest_activity")
    s = ReconciliationSettings.from_dlt_config()
    assert (s.payout_tolerance, s.as_of) == (D("0.10"), "latest_activity")
    monkeypatch.setenv("TRANSFORMS__OVERDUE_GRACE_BUSINESS_DAYS", "x")
    with pytest.raises(TypeError, match="overdue_grace_business_days must be an integer"):
        ReconciliationSettings.from_dlt_config()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"payout_tolerance": 0.01}, "is a float"),
        ({"payout_tolerance": "-1"}, "non-negative"),
        ({"order_tolerance": "0.001"}, "in paise"),
        ({"order_tolerance": "abc"}, "not an amount"),
        ({"overdue_grace_business_days": -1}, "integer from 0"),
        ({"settlement_business_days": 0}, "integer from 1"),
        ({"as_of": "2024-03-11T09:00:00"}, "UTC offset"),
        ({"extra_holidays": ["08/03/2024"]}, "ISO date"),
        ({"tolerance": "0.00"}, "unknown \\[transforms\\] setting"),
        ({"as_of": "yesterday"}, "ISO date-time"),
    ],
)
def test_settings_reject_bad_values_naming_the_key(config, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ReconciliationSettings.from_mapping(config)


def test_schema_names_must_be_identifiers(bare_env):
    from transforms import build_marts

    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        build_marts(bare_env.warehouse, raw_schema="raw; DROP TABLE x", marts_schema="m")
    with pytest.raises(ValueError, match="must differ"):
        build_marts(bare_env.warehouse, raw_schema="same", marts_schema="same")


# -- calendar -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "paid_on, due",
    [
        (date(2024, 3, 4), date(2024, 3, 7)),  # Mon → Thu
        (date(2024, 3, 1), date(2024, 3, 6)),  # Fri → Wed
        (date(2024, 3, 2), date(2024, 3, 6)),  # Sat → Mon, Tue, Wed
        (date(2024, 3, 3), date(2024, 3, 6)),  # Sun → Mon, Tue, Wed
        (date(2024, 1, 23), date(2024, 1, 29)),  # Republic Day (Fri 26) skipped
        (date(2024, 1, 26), date(2024, 1, 31)),  # a payment on the holiday: Mon, Tue, Wed
        (date(2024, 3, 21), date(2024, 3, 27)),  # Holi (Mon 25) skipped: Fri, Tue, Wed
        (date(2024, 3, 26), date(2024, 4, 1)),  # Good Friday (29) skipped: Wed, Thu, Mon
    ],
)
def test_expected_payout_date(paid_on, due):
    assert expected_payout_date(paid_on) == due


def test_extra_holidays_and_rule_parameters():
    s = ReconciliationSettings(extra_holidays=(date(2024, 3, 6),), settlement_business_days=2, overdue_grace_business_days=2)
    (day,) = settlement_calendar(date(2024, 3, 4), date(2024, 3, 4), s)
    # Mon 03-04: Tue (1), Wed is an extra holiday, Thu (2); grace Fri, Mon
    assert (day.expected_payout_date, day.overdue_after_date) == (date(2024, 3, 7), date(2024, 3, 11))
    assert settlement_calendar(date(2024, 3, 6), date(2024, 3, 6), s)[0].holiday_name.startswith("extra holiday")


def test_calendar_business_day_numbers_count_business_days():
    days = settlement_calendar(date(2024, 1, 22), date(2024, 1, 29), ReconciliationSettings())
    numbers = {d.calendar_date.day: d.business_day_number for d in days}
    # Mon 22 .. Thu 25 are business days, Fri 26 (Republic Day), Sat, Sun are not, Mon 29 is
    assert numbers == {22: 1, 23: 2, 24: 3, 25: 4, 26: 4, 27: 4, 28: 4, 29: 5}
