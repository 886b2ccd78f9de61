"""`python -m pipelines report` as a person runs it: a real process, the warehouse found by the
same options and configuration as `make check`; clear errors (exit 2, no traceback) for an
unknown merchant, a period that ends before it starts, a warehouse without marts or no warehouse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from report.formatting import moment, to_ist
from tests.report.reportdata import parse, run_report


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


def test_help_lists_the_options():
    proc = run_report("--help")
    assert proc.returncode == 0
    for option in ("--merchants", "--from", "--to", "--output", "--destination", "--duckdb-path"):
        assert option in proc.stdout


def test_writes_the_page_and_downloads_where_asked(clean, tmp_path):
    out = tmp_path / "nested" / "report.html"
    proc = run_report("--duckdb-path", str(clean.settings.duckdb_path), "--output", str(out), env=clean.env())
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout
    assert out.exists() and (out.parent / "payouts.csv").exists()
    page = parse(out)
    text = page.text
    # the as-of date and each merchant's freshness, in IST, at the top
    assert "Data as of Mon 18 Nov 2024 (IST)" in text
    assert "Sun 20 Oct 2024 – Mon 18 Nov 2024" in text  # the default period: 30 days up to it
    wh = clean.open()
    try:
        for merchant in clean.merchants:
            latest = wh.query(f"SELECT MAX(created_at) FROM {clean.schema}.payments_reconciled "
                              f"WHERE merchant = '{merchant}'")[1][0][0]
            assert moment(latest) in text and moment(latest).endswith(" IST")
            assert to_ist(latest).utcoffset() == timedelta(hours=5, minutes=30)
    finally:
        wh.close()
    # offline: nothing the page loads comes from elsewhere, and it has no script at all
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/", "")
    assert "https://" not in html
    assert all(not s.startswith(("http:", "https:", "//")) for s in page.sources + page.links)


def test_configuration_finds_the_warehouse_and_merchants_narrow_it(clean, tmp_path):
    first = clean.merchants[0]
    out = tmp_path / "index.html"
    proc = run_report("--merchants", first, "--output", str(out), env=clean.env())  # path from INSTAMOJO_ELT__DUCKDB_PATH
    assert proc.returncode == 0, proc.stderr
    page = parse(out)
    assert {f.merchant for f in page.figures} == {first}


def test_a_merchant_without_data_in_the_period_is_said_so(clean, tmp_path):
    out = tmp_path / "index.html"
    proc = run_report("--from", "2024-01-01", "--to", "2024-01-31", "--output", str(out), env=clean.env())
    assert proc.returncode == 0, proc.stderr
    page = parse(out)
    assert sorted(r["data-nodata"] for r in page.rows["nodata"]) == sorted(clean.merchants)
    assert "No payments, payouts, orders or exceptions for" in page.text
    assert {f.value for f in page.figures if f.key in ("sales", "paid_out", "exceptions_amount")} == {"0.00"}


@pytest.mark.parametrize("args, message", [
    (["--merchants", "nosuchshop"], "unknown merchant(s) nosuchshop; merchants in the warehouse: "),
    (["--from", "2024-11-10", "--to", "2024-11-01"], "--from 2024-11-10 is after --to 2024-11-01"),
])
def test_bad_input_is_a_clear_error(clean, tmp_path, args, message):
    proc = run_report(*args, "--output", str(tmp_path / "x.html"), env=clean.env())
    assert proc.returncode == 2
    assert message in proc.stderr
    if "merchant" in message:
        assert all(m in proc.stderr for m in clean.merchants)
    _no_traceback(proc)
    assert not (tmp_path / "x.html").exists()


def test_a_date_that_is_not_a_date_is_a_usage_error(tmp_path):
    proc = run_report("--from", "18/11/2024", "--output", str(tmp_path / "x.html"))
    assert proc.returncode == 2
    assert "'18/11/2024' is not a date (YYYY-MM-DD)" in proc.stderr
    _no_traceback(proc)


def test_a_warehouse_without_marts_or_no_warehouse_is_a_clear_error(tmp_path):
    import duckdb

    raw_only = tmp_path / "raw.duckdb"
    con = duckdb.connect(str(raw_only))
    con.execute("CREATE SCHEMA instamojo_raw; CREATE TABLE instamojo_raw.payments (id TEXT)")
    con.close()
    proc = run_report("--duckdb-path", str(raw_only), "--output", str(tmp_path / "x.html"))
    assert proc.returncode == 2
    assert "the warehouse has no marts in schema 'instamojo'" in proc.stderr
    assert "payments_reconciled" in proc.stderr and "make transform" in proc.stderr
    _no_traceback(proc)

    missing = tmp_path / "nothing-here.duckdb"
    proc = run_report("--duckdb-path", str(missing), "--output", str(tmp_path / "x.html"))
    assert proc.returncode == 2
    assert f"no warehouse at {missing}" in proc.stderr and "make sync" in proc.stderr
    _no_traceback(proc)
    assert not missing.exists()  # read-only: the report never creates a warehouse


def test_an_empty_warehouse_gets_a_page_that_says_so(tmp_path):
    from transforms import ReconciliationSettings, Warehouse, build_marts

    path = tmp_path / "empty.duckdb"
    wh = Warehouse.duckdb(str(path))
    build_marts(wh, raw_schema="instamojo_raw", marts_schema="instamojo", settings=ReconciliationSettings())
    wh.close()
    out = tmp_path / "out" / "index.html"
    proc = run_report("--duckdb-path", str(path), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "hold no merchant yet" in proc.stdout
    assert "No data yet" in parse(out).text
    proc = run_report("--duckdb-path", str(path), "--merchants", "acme", "--output", str(out))
    assert proc.returncode == 2 and "unknown merchant(s) acme" in proc.stderr and "make sync" in proc.stderr
