"""Every figure on the page equals the SQL sum it stands for, to the paisa, on warehouses the real
pipeline built from the sandbox: a clean one, and one with every anomaly injected (each shows in
the exceptions section with the sandbox's ids and amounts; the clean one shows none)."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from report import Marts, downloads, write_report
from report.formatting import count, inr
from tests.report.reportdata import Built, Truth, parse


def _write(built: Built, out: Path, **kwargs):
    wh = built.open()
    try:
        return write_report(Marts(wh, built.schema), out / "index.html", **kwargs)
    finally:
        wh.close()


def _check_every_figure(built: Built, result) -> int:
    page = parse(result.path)
    period = result.report.period
    wh = built.open()
    try:
        truth = Truth(wh, built.schema, period.start, period.end)
        wrong = []
        for fig in page.figures:
            expected = truth.value(fig.key, fig.merchant)
            shown = Decimal(fig.value) if "." in fig.value else int(fig.value)
            if shown != expected or type(shown) is not (Decimal if isinstance(expected, Decimal) else int):
                wrong.append((fig.merchant, fig.key, fig.value, expected))
            # what a person reads is the exact value, formatted
            text = fig.text.strip()
            assert text == (inr(expected) if isinstance(expected, Decimal) else count(expected)), (fig, expected)
        assert wrong == []
    finally:
        wh.close()
    # every merchant has every tile and every flow step
    keys = {(f.merchant, f.key) for f in page.figures}
    for m in [m.merchant for m in result.report.merchants]:
        for key in ("sales", "fees", "gst", "refunds", "held", "paid_out", "awaiting", "overdue",
                    "exceptions_count", "exceptions_amount", "flow_sales", "flow_paid", "flow_residual",
                    "daily_expected", "daily_paid", "payouts_count", "unsettled_net"):
            assert (m, key) in keys, (m, key)
    return len(page.figures)


@pytest.mark.parametrize("which", ["clean", "anomalous"])
def test_every_figure_equals_its_sql_sum(which, request, tmp_path):
    built: Built = request.getfixturevalue(which)
    result = _write(built, tmp_path)
    # the default period: the last 30 days up to the data's as-of date
    assert result.report.period.end == built.as_of
    assert result.report.period.start == built.as_of - timedelta(days=29)
    assert _check_every_figure(built, result) > 100


def test_every_figure_equals_its_sql_sum_over_a_chosen_week(anomalous, tmp_path):
    end = anomalous.as_of - timedelta(days=3)
    result = _write(anomalous, tmp_path, start=end - timedelta(days=6), end=end, merchants=anomalous.merchants[:1])
    assert [m.merchant for m in result.report.merchants] == anomalous.merchants[:1]
    _check_every_figure(anomalous, result)
    # payments made before the week and still unsettled are counted apart, not lost
    assert result.report.merchants[0].unsettled_figures[-2].key == "unsettled_before_count"


def test_clean_warehouse_shows_no_exception(clean, tmp_path):
    result = _write(clean, tmp_path)
    page = parse(result.path)
    assert "exception" not in page.rows
    assert all(m.exceptions_count == 0 and m.flow.balanced for m in result.report.merchants)
    assert page.text.count("No exceptions.") == len(clean.merchants)
    assert page.text.count("Adds up to the paisa.") == len(clean.merchants)
    assert list(downloads.read(tmp_path / "exceptions.csv")) == []


def test_each_injected_anomaly_shows_with_the_truths_id_and_amount(anomalous, tmp_path):
    result = _write(anomalous, tmp_path)
    page = parse(result.path)
    html = result.path.read_text(encoding="utf-8")
    rows = {r["data-exception"]: r for r in page.rows["exception"]}
    by_kind = {}
    for a in anomalous.anomalies:
        by_kind.setdefault(a["kind"], []).append(a)

    def shown(exception_id: str, entity: str, amount: str | None) -> None:
        assert exception_id in rows, (exception_id, sorted(rows))
        assert rows[exception_id]["data-entity"] == entity
        row_html = html[html.index(f'data-exception="{exception_id}"'):]
        row_html = row_html[:row_html.index("</tr>")]
        if amount is None:
            assert 'data-value="">unknown<' in row_html
        else:
            assert f'data-value="{amount}">{inr(Decimal(amount))}<' in row_html

    orphan = by_kind["orphan_payment"][0]
    shown(f"orphan_payment:{orphan['payment_id']}", orphan["payment_id"], orphan["amount"])
    assert orphan["payout_id"] in row_text(html, f"orphan_payment:{orphan['payment_id']}")
    unbalanced = by_kind["unbalanced_payout"][0]
    shown(f"payout_residual:{unbalanced['payout_id']}", unbalanced["payout_id"], unbalanced["residual"])
    short = by_kind["short_paid_order"][0]
    shown(f"order_status_mismatch:{short['order_id']}", short["order_id"], short["shortfall"])
    for nan in by_kind["non_numeric_amount"]:
        table = {"payments": "payments", "payouts": "payouts"}[nan["endpoint"]]
        shown(f"invalid_amount:{nan['id']}:{table}.{nan['field']}", nan["id"], None)
        assert '"N/A"' in row_text(html, f"invalid_amount:{nan['id']}:{table}.{nan['field']}")
    # the source absorbs these: nothing more than the five above
    assert len(rows) == 5

    # the settlement flow names the payout that does not add up and the one it cannot place
    assert [r["data-unbalanced"] for r in page.rows["unbalanced"]] == [unbalanced["payout_id"]]
    payout_nan = next(a for a in by_kind["non_numeric_amount"] if a["endpoint"] == "payouts")
    assert [r["data-excluded"] for r in page.rows["excluded"]] == [payout_nan["id"]]
    flows = {m.merchant: m.flow for m in result.report.merchants}
    assert flows[unbalanced["merchant"]].residual == Decimal(unbalanced["residual"])
    assert flows[unbalanced["merchant"]].steps_add_up and flows[unbalanced["merchant"]].paid_adds_up
    # unbalanced payouts come first in the payouts table
    payout_ids = [r["data-payout"] for r in page.rows["payout"]]
    for merchant in (unbalanced["merchant"], payout_nan["merchant"]):
        first = next(m for m in result.report.merchants if m.merchant == merchant).payouts[0]
        assert first["status"] != "balanced" and first["payout_id"] in payout_ids
    # the order section lists the mislabelled order under its status
    assert short["order_id"] in {r["data-order"] for r in page.rows["order"]}

    # the downloads: the same exceptions, money as exact decimal strings
    csv_rows = list(downloads.read(tmp_path / "exceptions.csv"))
    assert {r["exception_id"] for r in csv_rows} == set(rows)
    assert {r["amount_at_stake"] for r in csv_rows} == {orphan["amount"], unbalanced["residual"], short["shortfall"], ""}


def row_text(html: str, exception_id: str) -> str:
    import html as htmllib

    start = html.index(f'data-exception="{exception_id}"')
    return htmllib.unescape(html[start:html.index("</tr>", start)])


def test_downloads_hold_every_row_with_exact_money(anomalous, tmp_path):
    result = _write(anomalous, tmp_path)
    money = re.compile(r"^-?\d+\.\d{2}$")
    money_columns = {"amount", "fees", "taxes", "net_amount", "paid_amount", "sales_amount", "residual",
                     "amount_at_stake", "order_amount", "balance_due", "expected_net_amount", "paid_out_amount"}
    for name, (_, columns) in downloads.FILES.items():
        rows = list(downloads.read(tmp_path / name))
        assert list(rows[0].keys()) == columns if rows else True
        for row in rows:
            for column in money_columns & set(columns):
                assert row[column] == "" or money.match(row[column]), (name, column, row[column])
    wh = anomalous.open()
    try:
        for m in result.report.merchants:
            truth = Truth(wh, anomalous.schema, result.report.period.start, result.report.period.end)
            payments = [r for r in downloads.read(tmp_path / "payments.csv")
                        if r["merchant"] == m.merchant and r["status"] == "successful"]
            assert sum((Decimal(r["amount"]) for r in payments if r["amount"]), Decimal("0.00")) == truth.value("sales", m.merchant)
            payouts = {r["payout_id"]: r for r in downloads.read(tmp_path / "payouts.csv") if r["merchant"] == m.merchant}
            assert len(payouts) == truth.value("payouts_count", m.merchant)
            items = [r for r in downloads.read(tmp_path / "payout_payments.csv") if r["merchant"] == m.merchant]
            assert {r["payout_id"] for r in items} <= set(payouts)
            summary = {r["figure"]: r["value"] for r in downloads.read(tmp_path / "summary.csv") if r["merchant"] == m.merchant}
            assert Decimal(summary["paid_out"]) == truth.value("paid_out", m.merchant)
            daily = [r for r in downloads.read(tmp_path / "daily_settlement.csv") if r["merchant"] == m.merchant]
            assert len(daily) == result.report.period.days
            assert sum(Decimal(r["paid_out_amount"]) for r in daily) == truth.value("daily_paid", m.merchant)
    finally:
        wh.close()


def test_overdue_money_is_aged_and_listed(clean, tmp_path):
    """The marts rebuilt as of two weeks after the sync: what was awaiting payout is overdue."""
    import dataclasses
    import shutil
    from datetime import datetime, time

    from transforms import ReconciliationSettings, Warehouse, build_marts

    copy = tmp_path / "later.duckdb"
    shutil.copy(clean.settings.duckdb_path, copy)
    later = datetime.combine(clean.as_of + timedelta(days=14), time(12), tzinfo=UTC)
    wh = Warehouse.duckdb(str(copy))
    try:
        build_marts(wh, raw_schema=clean.settings.raw_dataset, marts_schema=clean.schema,
                    settings=ReconciliationSettings(as_of=later))
    finally:
        wh.close()
    built = dataclasses.replace(clean, settings=dataclasses.replace(clean.settings, duckdb_path=copy))
    result = _write(built, tmp_path / "out", start=clean.as_of - timedelta(days=20), end=clean.as_of)
    _check_every_figure(built, result)
    page = parse(result.path)
    overdue = {f.merchant: Decimal(f.value) for f in page.figures if f.key == "overdue"}
    assert all(v > 0 for v in overdue.values()), overdue
    aged = [f for f in page.figures if f.key.startswith("aging_overdue:") and Decimal(f.value) > 0]
    assert aged and all(not f.key.endswith("0–3 business days") for f in aged)
    listed = {r["data-payment"] for r in page.rows["payment"]}
    exceptions = {r["data-entity"] for r in page.rows["exception"] if r["data-exception"].startswith("overdue_settlement:")}
    assert listed and listed == exceptions
