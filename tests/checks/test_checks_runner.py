"""The runner: an exception anywhere (inside great-expectations, in SQL, in a suite) fails the
run and never passes; Data Docs are written where configured; no network; cheap import;
settings."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import checks.runner as runner
from checks import CheckSettings, suite_names

# --- exceptions fail the run -------------------------------------------------------------------


def test_a_column_that_does_not_exist_fails_the_run(duck):
    duck.sql("ALTER TABLE {raw}.payments DROP COLUMN fees")
    report = duck.check(suites=("raw.payments",))
    assert not report.ok
    raised = [r for r in report.suite("raw.payments").results if r.raised]
    assert {r.what for r in raised} == {
        "fees is an exact decimal (DECIMAL in the warehouse, never a float or text)",
        "fees has at most two decimal places", "fees is never null", "fees ≥ 0",
    }
    assert all(r.raised.startswith("column fees missing from instamojo_raw.payments") for r in raised)
    assert all(not r.success for r in raised)
    assert "fees is never null — could not be checked: column fees missing" in report.summary()


def test_a_warn_expectation_that_raises_still_fails_the_run(duck):
    duck.sql("ALTER TABLE {raw}.payments DROP COLUMN payment_type")
    report = duck.check(suites=("raw.payments",))
    assert not report.ok
    [r] = [r for r in report.suite("raw.payments").results if r.failed]
    assert r.severity == "warn" and r.raised and r.blocking
    assert "ERROR instamojo_raw.payments: payment_type is one of" in report.summary()


def test_an_exception_inside_metric_computation_fails_every_expectation(duck, monkeypatch):
    """A broken great-expectations (here: its pandas engine raising while computing metrics)
    must not pass anything."""
    from great_expectations.execution_engine import PandasExecutionEngine

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulated failure inside great-expectations")

    monkeypatch.setattr(PandasExecutionEngine, "resolve_metrics", broken)
    report = duck.check(suites=("raw.payouts",))
    results = report.suite("raw.payouts").results
    assert not report.ok
    assert results and all(r.failed and r.raised for r in results)
    assert all(r.success is False for r in results)


def test_validation_that_raises_fails_every_expectation(duck, monkeypatch):
    import great_expectations as gx

    def broken(self, **kwargs):
        raise RuntimeError("validator exploded")

    monkeypatch.setattr(gx.ValidationDefinition, "run", broken)
    report = duck.check(suites=("raw.orders",))
    results = report.suite("raw.orders").results
    assert not report.ok and results
    assert all(r.raised == "RuntimeError: validator exploded" for r in results)


def _tamper(monkeypatch, change):
    """Let great-expectations validate, then alter its results with `change(results)`."""
    import great_expectations as gx

    original = gx.ValidationDefinition.run

    def run(self, **kwargs):
        outcome = original(self, **kwargs)
        change(outcome.results)
        return outcome

    monkeypatch.setattr(gx.ValidationDefinition, "run", run)


def test_success_with_an_exception_recorded_is_not_a_pass(duck, monkeypatch):
    def change(results):
        results[0].success = True
        results[0].exception_info = {"raised_exception": True, "exception_message": "hidden", "exception_traceback": ""}

    _tamper(monkeypatch, change)
    report = duck.check(suites=("raw.products",))
    assert not report.ok
    [r] = [r for r in report.suite("raw.products").results if r.failed]
    assert r.raised == "hidden" and r.success is False


def test_a_missing_result_is_not_a_pass(duck, monkeypatch):
    _tamper(monkeypatch, lambda results: results.pop())
    report = duck.check(suites=("raw.products",))
    assert not report.ok
    [r] = [r for r in report.suite("raw.products").results if r.failed]
    assert r.raised == "great-expectations returned no result for it"


def test_a_result_without_a_verdict_is_not_a_pass(duck, monkeypatch):
    def change(results):
        results[0].success = None

    _tamper(monkeypatch, change)
    report = duck.check(suites=("raw.products",))
    assert not report.ok
    [r] = [r for r in report.suite("raw.products").results if r.failed]
    assert "no verdict" in r.raised


def test_a_verdict_on_other_rows_is_not_a_pass(duck, monkeypatch):
    def change(results):
        for r in results:
            if "element_count" in r.result:
                r.result["element_count"] += 1
                return

    _tamper(monkeypatch, change)
    report = duck.check(suites=("raw.products",))
    assert not report.ok
    [r] = [r for r in report.suite("raw.products").results if r.failed]
    assert r.raised == "great-expectations judged 3 rows, the batch has 2"


def test_exception_info_missing_is_not_a_pass(duck, monkeypatch):
    def change(results):
        results[1].exception_info = None

    _tamper(monkeypatch, change)
    report = duck.check(suites=("raw.products",))
    assert not report.ok


def test_sql_that_fails_fails_the_suite(duck, monkeypatch):
    def broken(warehouse, sql):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(runner, "_read_frame", broken)
    report = duck.check(suites=("raw.payments",))
    assert not report.ok
    assert "could not read the table: RuntimeError: connection lost" in report.summary()


def test_unknown_suite_name_is_an_error(duck):
    with pytest.raises(ValueError, match="unknown suite"):
        duck.check(suites=("raw.paymnts",))


def test_suite_names_and_layers():
    from checks.runner import all_suites, select_suites

    names = suite_names()
    assert "raw.payments" in names and "marts.payout_reconciliation" in names
    assert len(names) == len(set(names))
    specs = all_suites()
    assert [s.name for s in select_suites(specs, ["raw"])] == [n for n in names if n.startswith("raw.")]
    assert [s.name for s in select_suites(specs, ["marts", "raw.orders"])] == (
        ["raw.orders"] + [n for n in names if n.startswith("marts.")]
    )


# --- exact money -------------------------------------------------------------------------------


def test_money_reaches_great_expectations_as_decimal(duck, monkeypatch):
    frames = {}
    original = runner._read_frame

    def spy(warehouse, sql):
        frame = original(warehouse, sql)
        frames[sql] = frame
        return frame

    monkeypatch.setattr(runner, "_read_frame", spy)
    report = duck.check(suites=("raw.payouts",))
    assert report.ok
    [frame] = frames.values()
    assert frame["paid_amount"].dtype == object
    assert {type(v) for v in frame["paid_amount"]} == {Decimal}
    assert set(frame["paid_amount"]) == {Decimal("972.86")}


# --- Data Docs ---------------------------------------------------------------------------------


def test_data_docs_are_written_and_replace_the_previous_run(duck, tmp_path):
    docs = tmp_path / "check-docs"
    docs.mkdir()
    (docs / "README.txt").write_text("not ours")
    duck.sql("UPDATE {raw}.payments SET amount = -1 WHERE id = 'm1-P1'")
    for _ in range(2):
        report = duck.check(suites=("raw.payments", "raw.payouts"), docs_dir=docs)
    assert report.docs_index == (docs / "index.html").resolve()
    assert report.docs_index.is_file()
    pages = sorted((docs / "validations").rglob("*.html"))
    assert len(pages) == 2  # one per suite, the first run's pages are gone
    payments_page = next(p for p in pages if "payments" in str(p)).read_text()
    # the expectation's severity, what and why are on the page
    assert "ERROR: amount ≥ 0 (why: this amount cannot be negative" in payments_page
    assert (docs / "README.txt").read_text() == "not ours"
    assert f"Data Docs: {report.docs_index}" in report.summary()


def test_data_docs_that_cannot_be_written_do_not_hide_the_verdicts(duck, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    report = duck.check(suites=("raw.payouts",), docs_dir=blocker)
    assert report.ok and report.docs_index is None
    assert "Data Docs not written" in report.summary()


# --- no network, cheap import ------------------------------------------------------------------


NETWORK_GUARD = """
import socket, sys
attempts = []
original = socket.socket.connect
def guarded(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
        attempts.append(address)
        raise OSError(f"test: network access to {address} refused")
    return original(self, address)
socket.socket.connect = guarded  # socket.create_connection and every HTTP client go through it
from checks import CheckSettings, run_checks
from transforms.warehouse import Warehouse
report = run_checks(Warehouse.duckdb(sys.argv[1]), settings=CheckSettings(
    docs_dir=sys.argv[2], suites=("raw.payments", "marts.payout_reconciliation")))
assert report.ok, report.summary()
assert report.docs_index is not None
assert attempts == [], attempts
print("no network")
"""


def test_no_network_access(duck, tmp_path):
    """A fresh process (so great-expectations' import is covered too) runs checks and writes Data
    Docs with every non-loopback connection refused and recorded: none is attempted."""
    duck.warehouse.close()  # the file is the fixture's private copy: hand it to the subprocess
    out = subprocess.run(
        [sys.executable, "-c", NETWORK_GUARD, str(tmp_path / "warehouse.duckdb"), str(tmp_path / "docs")],
        capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("no network")


def test_importing_checks_does_not_import_great_expectations():
    code = (
        "import sys, checks; from checks import CheckSettings, CheckReport, run_checks; "
        "assert 'great_expectations' not in sys.modules, 'great_expectations imported'; "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- settings ----------------------------------------------------------------------------------


def test_settings_from_mapping():
    s = CheckSettings.from_mapping({
        "freshness_max_age_hours": 36, "docs_dir": "out/docs",
        "suites": ["raw", "marts"], "required_tables": ["payments"], "offending_ids_shown": 3,
    }, payout_residual_tolerance=Decimal("0.05"))
    assert s.freshness_max_age == dt.timedelta(hours=36)
    assert s.payout_residual_tolerance == Decimal("0.05")
    assert s.docs_dir == Path("out/docs") and s.suites == ("raw", "marts")
    assert s.required_tables == ("payments",) and s.offending_ids_shown == 3
    assert CheckSettings.from_mapping({"freshness_max_age_hours": 0}).freshness_max_age is None
    assert CheckSettings.from_mapping({}, freshness_max_age=None) == CheckSettings()
    assert CheckSettings.from_mapping({"suites": []}).suites is None


@pytest.mark.parametrize("section, message", [
    # one payout tolerance: [transforms] payout_tolerance; the old [checks] key says where it went
    ({"payout_residual_tolerance": "0.05"}, "\\[transforms\\] payout_tolerance"),
    ({"freshness_max_age_hours": "soon"}, "must be a number"),
    ({"freshness_age": 3}, "unknown \\[checks\\] setting"),
])
def test_bad_settings_are_refused_with_a_clear_error(section, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CheckSettings.from_mapping(section)


@pytest.mark.parametrize("tolerance, message", [
    (0.05, "must be a Decimal"), (Decimal("0.005"), "at most two decimal places"), (Decimal("-1"), "≥ 0"),
])
def test_a_bad_tolerance_is_refused(tolerance, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CheckSettings(payout_residual_tolerance=tolerance)


def test_settings_from_dlt_config(monkeypatch):
    """Through dlt's providers (environment variables here: dlt caches the TOML files it read
    for the whole process, so a test must not point it at another .dlt folder)."""
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "48")
    monkeypatch.setenv("CHECKS__SUITES", "raw,marts")
    s = CheckSettings.from_dlt_config()
    assert s.freshness_max_age == dt.timedelta(days=2)
    assert s.suites == ("raw", "marts")
    assert CheckSettings.from_dlt_config(freshness_max_age=None).freshness_max_age is None
    monkeypatch.setenv("CHECKS__FRESHNESS_MAX_AGE_HOURS", "0")
    assert CheckSettings.from_dlt_config().freshness_max_age is None
    monkeypatch.setenv("CHECKS__PAYOUT_RESIDUAL_TOLERANCE", "0.10")  # the retired key is named, not ignored
    with pytest.raises(ValueError, match="payout_tolerance"):
        CheckSettings.from_dlt_config()
