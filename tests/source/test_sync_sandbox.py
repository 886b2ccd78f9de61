"""The source and `sync` against the sandbox over loopback HTTP, into real DuckDB files (and the
real Postgres for the `postgres`-marked tests). Nothing of ours or of dlt's is mocked."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from instamojo_sandbox import SandboxConfig
from pipelines.sync import sync_merchant
from tests.oauth_flow import obtain_tokens
from tests.pipeline_helpers import (  # noqa: F401 (used by the fixture)
    drop_postgres_schemas,
    open_test_warehouse,
    pipeline_settings,
    sync_all,
)
from tests.source.truth import assert_warehouse_matches, count_where

API_ENDPOINTS = ("user_info", "user_contact", "payments", "payouts", "products", "product_covers", "orders")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Real retries, short waits: dlt's client reads these [runtime] settings."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "6")


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def destination(request):
    """Every test here runs on DuckDB and (marked `postgres`) on the real Postgres."""
    return request.param


# What a test of HTTP behaviour (retries, rate limits, page sizes) proves does not depend on the
# warehouse the rows land in: it runs on DuckDB only (the suite's time goes to what does).
HTTP_ONLY = pytest.mark.parametrize("destination", ["duckdb"])


@pytest.fixture
def settings_for(destination, tmp_path):
    """Settings for a sandbox on this test's destination; Postgres schemas dropped afterwards."""
    made = []

    def make(sb, **kwargs):
        settings = pipeline_settings(sb, tmp_path, destination=destination, **kwargs)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        drop_postgres_schemas(settings)


def assert_all_ok(results):
    failed = [(r.merchant, r.error) for r in results if not r.ok]
    assert not failed, failed


def cursor(settings, merchant, family, pipeline_name=None):
    """Where a merchant's cursor of `family` stands in the engine's committed state."""
    from pipelines.warehouse import engine_pipeline
    from sources.instamojo.state import cursor_of

    states = engine_pipeline(settings, pipeline_name).state.get("sources", {}).get("instamojo", {}).get("merchants", {})
    return cursor_of(states.get(merchant) or {}, family)


def test_sync_equals_ground_truth_then_stays_equal_as_the_clock_advances(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=5, profile="small", page_size=20))
    # Payments change for weeks (refund cases after payout); a lookback that covers the whole
    # history makes "equal to the truth" exact. Shorter lookbacks: the tests further down.
    settings = settings_for(sb, payments_lookback_days=60)
    if True:
        assert_all_ok(sync_all(settings))
        wh = open_test_warehouse(settings)
        counts = assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)
        assert counts["payments"] > 200 and counts["order_items"] > 50 and counts["product_covers"] > 0
        pending_before = count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE status IS NULL")
        linked_before = count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE payout_id IS NOT NULL")
        assert pending_before > 0
        wh.close()

        # new records appear, pending payments resolve, payouts link payments, pending orders get paid
        sb.advance(days=4)
        assert_all_ok(sync_all(settings))
        wh = open_test_warehouse(settings)
        counts_after = assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)
        assert counts_after["payments"] > counts["payments"]
        assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE payout_id IS NOT NULL") > linked_before
        wh.close()


def test_payment_paid_out_after_its_lookback_window_gets_its_payout_link(sandbox_factory, settings_for):
    # A lookback of one hour: every payout link set during the week below is set long after the
    # payment left the payments window, so only the payout follow-up can bring it.
    sb = sandbox_factory(SandboxConfig(seed=2, profile="small", page_size=50))
    settings = settings_for(sb, payments_lookback_days=1 / 24)
    assert_all_ok(sync_all(settings))
    sb.advance(days=7)
    results = sync_all(settings)
    assert_all_ok(results)
    assert all(r.requests.get("/v2/payments/?payout", 0) > 0 for r in results)
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants, tables=["payouts"])
    # every payment carries the payout the API shows for it now (refund cases that land weeks
    # later are another matter: see test_a_longer_lookback_for_one_run_picks_up_late_refund_cases)
    linked = dict(wh.query(f"SELECT id, payout_id FROM {settings.raw_dataset}.payments")[1])
    for merchant in sb.merchants:
        for p in sb.truth(merchant, "payments"):
            want = p["payout"].rstrip("/").rsplit("/", 1)[-1] if p["payout"] else None
            assert linked[p["id"]] == want, (p["id"], want, linked[p["id"]])


def test_a_sync_with_nothing_new_makes_a_couple_of_requests_per_endpoint(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=3, profile="small", page_size=100))
    settings = settings_for(sb)
    assert_all_ok(sync_all(settings))
    sb.reset_stats()
    assert_all_ok(sync_all(settings))
    stats = sb.stats()["merchants"]
    for merchant in settings.merchants:
        per_endpoint = {e: v["requests"] for e, v in stats[merchant].items()}
        assert per_endpoint.pop("oauth_token") == 1  # one refresh per run
        assert set(per_endpoint) <= set(API_ENDPOINTS), per_endpoint
        assert max(per_endpoint.values()) <= 2, per_endpoint
        assert "product_covers" not in per_endpoint  # covers are read once per product


@HTTP_ONLY
def test_retries_429_5xx_dropped_connections_and_a_token_expiring_mid_run(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=4, profile="small", page_size=10))
    settings = settings_for(sb, page_concurrency=4)
    sb.faults.add("error", endpoint="payments", status=429, retry_after=1, count=2, skip=1)
    sb.faults.add("error", endpoint="payments", status=503, count=3, skip=4)
    sb.faults.add("error", endpoint="orders", status=500, count=2)
    sb.faults.add("error", endpoint="payouts", status=502, count=1)
    sb.faults.add("drop", endpoint="products", count=1)
    sb.faults.add("expire_token", endpoint="payments", count=1, skip=8)
    sb.faults.add("slow", endpoint="user_info", delay=0.5, count=1)
    results = sync_all(settings)
    assert_all_ok(results)
    assert sb.request_count(status=429) == 2 and sb.request_count(status=503) >= 3
    assert sb.request_count(status=401) >= 1  # the expired token was refused, refreshed, retried
    assert sum(r.requests.get("/v2/payments/", 0) for r in results) > 0
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)


def test_rotated_refresh_tokens_are_persisted_before_use(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=6, profile="small", page_size=50, rotate_refresh_tokens=True))
    settings = settings_for(sb, merchants=sb.merchants[:1])
    merchant = settings.merchants[0]
    configured = settings.refresh_tokens[merchant]
    assert_all_ok(sync_all(settings, resources=["user_info"]))
    stored = settings.token_store.get(merchant)
    assert stored.refresh_token != configured  # rotated and stored
    assert stat.S_IMODE(os.stat(settings.token_store.file_of(merchant)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(settings.token_store.path).st_mode) == 0o700
    # the configured token is now dead at the sandbox; the stored one carries the next run
    for _ in range(2):
        assert_all_ok(sync_all(settings, resources=["user_info"]))
    assert settings.token_store.get(merchant).refresh_token not in (configured, stored.refresh_token)


def test_a_rotated_token_lost_on_the_wire_is_explained_in_the_summary(sandbox_factory, settings_for):
    """The token endpoint rotated the refresh token, and its answer never arrived (the connection
    dropped mid-body): the retry finds the old token spent. Nothing here can recover the new
    one; the merchant's error says what happened and how to fix it, and no cursor moved."""
    sb = sandbox_factory(SandboxConfig(seed=6, profile="small", page_size=50, rotate_refresh_tokens=True))
    settings = settings_for(sb, merchants=sb.merchants[:1])
    merchant = settings.merchants[0]
    sb.faults.add("drop", endpoint="oauth_token", count=1)
    (result,) = sync_all(settings, resources=["user_info"])
    assert result.error is not None
    assert "the new token never arrived" in result.error
    assert f"make authorize MERCHANT={merchant}" in result.error
    statuses = [e["status"] for e in sb.request_log() if e["endpoint"] == "oauth_token"]
    assert statuses[-1] == 400  # the retry of the same (now spent) refresh token was refused


def test_a_revoked_merchant_and_a_missing_scope_do_not_stop_the_others(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=7, profile="small", merchants=3, page_size=50))
    healthy, revoked, partial = sb.merchants
    settings = settings_for(sb, merchants=[healthy, revoked])
    # the third merchant granted everything but payouts
    scopes = ["user-info:read", "user-contact:read", "payments:read", "products:read", "orders:read"]
    settings.refresh_tokens[partial] = obtain_tokens(sb, partial, scopes=scopes)["refresh_token"]
    settings = settings.with_overrides(merchants=(healthy, revoked, partial))
    sb.revoke(merchant=revoked)

    results = {r.merchant: r for r in sync_all(settings)}
    assert results[healthy].ok and results[partial].ok
    assert not results[revoked].ok
    assert "make authorize" in results[revoked].error and revoked in results[revoked].error
    assert results[partial].skipped == {"payouts": "scope payouts:read not granted"}
    assert sb.request_count(merchant=partial, endpoint="payouts") == 0
    wh = open_test_warehouse(settings)
    assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE merchant = '{revoked}'") == 0
    assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payouts WHERE merchant = '{partial}'") == 0
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [healthy])


@pytest.mark.parametrize("endpoint, concurrency, skip", [("payments", 1, 2), ("orders", 4, 1)])
def test_a_page_that_stays_malformed_fails_clearly_keeps_the_cursor_and_the_next_run_completes(
    sandbox_factory, settings_for, endpoint, concurrency, skip
):
    # payments pages are parsed as they arrive (sequential, stop rule); orders pages fetched in
    # parallel reach the Arrow parser unparsed: both must name the page and keep the cursor.
    sb = sandbox_factory(SandboxConfig(seed=8, profile="small", page_size=5))
    settings = settings_for(sb, merchants=sb.merchants[:1], page_concurrency=concurrency)
    merchant = settings.merchants[0]
    assert_all_ok(sync_all(settings))
    before = cursor(settings, merchant, endpoint)

    sb.advance(days=2)
    # a page after the first stays cut off through every retry
    sb.faults.add("malformed", endpoint=endpoint, count=8, skip=skip)
    result = sync_merchant(settings, merchant)
    assert not result.ok
    assert "malformed JSON" in result.error and f"/v2/{endpoint}/" in result.error and merchant in result.error
    assert "page" in result.error
    assert "cursors did not move" in result.error
    assert cursor(settings, merchant, endpoint) == before
    # what did land of the other listings is a correct merge: every row equals the API's record
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [merchant], tables=["payouts"], subset=True)
    wh.close()

    sb.faults.clear()
    assert_all_ok([sync_merchant(settings, merchant)])
    assert cursor(settings, merchant, endpoint) > before
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [merchant])


@pytest.mark.parametrize("endpoint", ["payments", "orders"])
def test_a_page_cut_off_once_is_fetched_again_and_the_run_succeeds(sandbox_factory, settings_for, endpoint):
    sb = sandbox_factory(SandboxConfig(seed=8, profile="small", page_size=5))
    settings = settings_for(sb, merchants=sb.merchants[:1], page_concurrency=4)
    sb.faults.add("malformed", endpoint=endpoint, count=2, skip=1)
    [result] = sync_all(settings)
    assert result.ok, result.error
    assert sb.request_count(endpoint=endpoint, status=200) > 0
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, settings.merchants)


@pytest.mark.parametrize("order", ["oldest_first", "unordered"])
def test_listings_in_any_order_still_give_complete_data(sandbox_factory, settings_for, order):
    sb = sandbox_factory(SandboxConfig(seed=9, profile="small", page_size=15, sort_order=order))
    # a lookback that spans the advance: refunds of old payments (a case, a new updated_at) too
    settings = settings_for(sb, merchants=sb.merchants[:1], payments_lookback_days=30)
    assert_all_ok(sync_all(settings))
    sb.advance(days=5)
    assert_all_ok(sync_all(settings))
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, settings.merchants)


def test_anomalies_the_source_absorbs(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=10, profile="small", page_size=20))
    merchant = sb.merchants[0]
    duplicate = sb.anomalies.inject("duplicate_across_pages", merchant, endpoint="payments", page=1)
    unknown = sb.anomalies.inject("unknown_field", merchant, endpoint="payments")
    bad = sb.anomalies.inject("non_numeric_amount", merchant, endpoint="payments")
    settings = settings_for(sb, merchants=[merchant])
    [result] = sync_all(settings)
    assert result.ok, result.error
    wh = open_test_warehouse(settings)
    # the record repeated across pages lands once
    assert count_where(wh, f"SELECT count(*) - count(DISTINCT id) FROM {settings.raw_dataset}.payments") == 0
    # the new field is kept as a column, and the run says so
    field = unknown["field"]
    assert field in wh.columns_of(settings.raw_dataset, "payments")
    assert any(field in w for w in result.warnings)
    # the non-numeric amount is NULL with its text kept, and the run names the record
    bad_id = bad["id"]
    _, rows = wh.query(f"SELECT amount, amount__v_text FROM {settings.raw_dataset}.payments WHERE id = '{bad_id}'")
    assert rows == [(None, bad["value"])]
    assert any(bad_id in w and "amount" in w for w in result.warnings)
    assert duplicate  # injected


def test_no_secret_reaches_logs_the_warehouse_or_pipeline_state(sandbox_factory, settings_for, caplog, capsys):
    sb = sandbox_factory(SandboxConfig(seed=11, profile="small", page_size=50, rotate_refresh_tokens=True))
    settings = settings_for(sb)
    sb.faults.add("expire_token", endpoint="payments", count=1)
    with caplog.at_level(logging.DEBUG):
        results = sync_all(settings)
    sb.revoke(merchant=settings.merchants[0])
    with caplog.at_level(logging.DEBUG):
        results += sync_all(settings)
    secrets = {settings.client_secret, *settings.refresh_tokens.values()}
    secrets |= {e.refresh_token for e in settings.token_store.merchants().values()}
    secrets |= set(sb.oauth._access) | set(sb.oauth._refresh)  # every token the sandbox issued
    assert all(len(s) >= 8 for s in secrets)

    haystacks = {"logs": caplog.text, "output": "".join(capsys.readouterr())}
    haystacks["results"] = json.dumps([r.__dict__ for r in results], default=str)
    for path in Path(settings.pipelines_dir).rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    wh = open_test_warehouse(settings)
    raw = settings.raw_dataset
    for table in wh.query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{raw}'")[1]:
        haystacks[table[0]] = json.dumps(wh.query(f"SELECT * FROM {raw}.{table[0]}")[1], default=str)
    wh.close()
    for name, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {name}"


def test_a_longer_lookback_for_one_run_picks_up_late_refund_cases(sandbox_factory, settings_for):
    """Refunds land weeks after a payment (a case appears, updated_at moves) while the payment is
    long outside the default lookback: a periodic run with a long lookback (`sync --lookback-days
    40`) brings them in, without moving any cursor backwards."""
    sb = sandbox_factory(SandboxConfig(seed=12, profile="small", page_size=50))
    settings = settings_for(sb, merchants=sb.merchants[:1])
    merchant = settings.merchants[0]
    assert_all_ok(sync_all(settings))
    sb.advance(days=12)
    assert_all_ok(sync_all(settings))
    cursor_before = cursor(settings, merchant, "payments")
    truth = {p["id"]: p for p in sb.truth(merchant, "payments")}
    window_start = cursor_before - timedelta(days=40)

    def stale_in_window() -> list[str]:
        wh = open_test_warehouse(settings)
        _, rows = wh.query(f"SELECT id, cases, updated_at, created_at FROM {settings.raw_dataset}.payments")
        wh.close()
        return [
            pid for pid, cases, updated, created in rows
            if created >= window_start
            and (json.loads(cases) != truth[pid]["cases"] or updated != datetime.fromisoformat(truth[pid]["updated_at"]))
        ]

    assert stale_in_window(), "the sandbox should have refunded payments outside the 3-day lookback"
    deep = settings.with_overrides(source=settings.source.__class__(payments_lookback_days=40))
    assert_all_ok(sync_all(deep))
    assert stale_in_window() == []
    assert cursor(settings, merchant, "payments") == cursor_before


def test_an_interrupted_run_is_finished_by_the_next_without_duplicates(sandbox_factory, settings_for):
    """A run that stopped after extracting (a crash, a kill, a full disk at load time) left a
    load package with its state; the next run loads that package first, then continues from the
    state it carried: nothing is lost, nothing is loaded twice."""
    from pipelines.warehouse import engine_pipeline, loader_file_format
    from sources.instamojo import MerchantSpec, instamojo_source

    sb = sandbox_factory(SandboxConfig(seed=13, profile="small", page_size=20))
    settings = settings_for(sb, merchants=sb.merchants[:1], payments_lookback_days=60)
    merchant = settings.merchants[0]
    assert_all_ok(sync_all(settings))
    sb.advance(days=2)

    # the interrupted run: extracted and normalized, never loaded
    pipeline = engine_pipeline(settings)
    pipeline.extract(instamojo_source(
        merchants=[MerchantSpec(merchant, settings.refresh_tokens[merchant])], base_url=settings.base_url,
        client_id=settings.client_id, client_secret=settings.client_secret,
        token_store_path=str(settings.token_store_path), payments_lookback_days=60,
        page_size=settings.source.page_size,
    ), loader_file_format=loader_file_format(settings))
    pipeline.normalize()
    assert pipeline.list_normalized_load_packages()

    sb.advance(days=1)
    from pipelines.sync import sync_merchants

    run = sync_merchants(settings)
    assert run.ok, run.results
    assert run.finished_interrupted
    # what the earlier run had extracted was counted by nobody: the marts rebuild the merchant in
    # every model, whatever this run's own rows were
    from sources.instamojo.schema import RAW_TABLES

    assert run.changed_tables == {merchant: sorted(RAW_TABLES)} and run.changed_merchants == [merchant]
    assert not engine_pipeline(settings).list_normalized_load_packages()
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [merchant])


@HTTP_ONLY
def test_a_rate_limited_api_is_honoured_and_the_client_side_limit_avoids_429s(sandbox_factory, settings_for):
    # the server allows 20 requests/s per token (burst 5) and answers 429 + Retry-After beyond
    sb = sandbox_factory(SandboxConfig(seed=14, profile="small", page_size=10, rate_limit=20, rate_limit_burst=5))
    merchant = sb.merchants[0]
    eager = settings_for(sb, merchants=[merchant])
    assert_all_ok(sync_all(eager, resources=["payments", "orders"]))
    assert sb.request_count(status=429) > 0  # it did hit the limit, and waited it out
    wh = open_test_warehouse(eager)
    assert_warehouse_matches(wh, eager.raw_dataset, sb, [merchant], tables=["payments", "orders"])
    wh.close()

    sb.reset_stats()
    polite = settings_for(sb, merchants=[merchant], max_requests_per_second=15)
    fresh = Path(polite.pipelines_dir).parent / "polite"  # a first sync again, not an incremental one
    polite = polite.with_overrides(pipelines_dir=fresh / "pipelines", duckdb_path=fresh / "w.duckdb",
                                   token_store_path=fresh / "tokens.json")
    assert_all_ok(sync_all(polite, resources=["payments", "orders"]))
    assert sb.request_count(status=429) == 0
    assert sb.request_count(merchant=merchant, endpoint="payments") > 20
