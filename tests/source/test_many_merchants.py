"""Many merchants in one run of the engine, against the sandbox over HTTP, on DuckDB and the real
Postgres: equal to the truth after a backfill and after the clock moves; one merchant's failure
(revoked token, a scope, a malformed page, 5xx until retries run out) never stops or corrupts the
others, its cursors do not move, and the next run completes it."""

from __future__ import annotations

import pytest

from instamojo_sandbox import SandboxConfig
from pipelines.sync import sync_merchants
from tests.oauth_flow import obtain_tokens
from tests.pipeline_helpers import (
    drop_postgres_schemas,
    open_test_warehouse,
    pipeline_settings,
)
from tests.source.test_sync_sandbox import cursor, fast_retries  # noqa: F401 (fixture)
from tests.source.truth import assert_warehouse_matches, count_where
from transforms.dbt import RAW_INPUTS

# Lookbacks over the whole history, and the product catalogue read whole every run (the sandbox's
# clock moves days while the wall clock moves seconds), make "equal to the truth" exact.
WHOLE_HISTORY = {**{f"{family}_lookback_days": 90 for family in ("payments", "payouts", "products", "orders")},
                 "products_full_read_hours": 0}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def destination(request):
    return request.param


# What a test of HTTP behaviour (retries, rate limits, page sizes) proves does not depend on the
# warehouse the rows land in: it runs on DuckDB only (the suite's time goes to what does).
HTTP_ONLY = pytest.mark.parametrize("destination", ["duckdb"])


@pytest.fixture
def settings_for(destination, tmp_path):
    made = []

    def make(sb, **kwargs):
        settings = pipeline_settings(sb, tmp_path, destination=destination, **kwargs)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        drop_postgres_schemas(settings)


def test_thirty_merchants_in_one_run_equal_the_truth_then_stay_equal(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=61, profile="small", merchants=30, days=10, payments_per_day=6,
                                       page_size=10))
    settings = settings_for(sb, merchant_concurrency=8, **WHOLE_HISTORY)
    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    assert len(run.results) == 30 and sorted(run.changed_merchants) == sorted(sb.merchants)
    wh = open_test_warehouse(settings)
    counts = assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)
    assert count_where(wh, f"SELECT count(DISTINCT merchant) FROM {settings.raw_dataset}.payments") == 30
    wh.close()
    assert counts["payments"] > 30 * 30

    sb.advance(days=3)
    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    wh = open_test_warehouse(settings)
    assert assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)["payments"] > counts["payments"]
    wh.close()
    assert {t for tables in run.changed_tables.values() for t in tables} >= set(RAW_INPUTS)

    # the raw tables a run reports changed, merchant by merchant (the marts rebuild each merchant
    # only in the models that read one of them), are those that got rows of that run
    sb.advance(days=1)
    run = sync_merchants(settings, resources=["payments"])
    assert run.ok, [r.error for r in run.results if not r.ok]
    wh = open_test_warehouse(settings)
    since = count_where(wh, f"SELECT MIN(_synced_at) FROM {settings.raw_dataset}.payments WHERE _synced_at > "
                            f"(SELECT MAX(_synced_at) FROM {settings.raw_dataset}.payouts)")
    landed = {(m, t) for t in RAW_INPUTS for (m,) in wh.query(
        f"SELECT DISTINCT merchant FROM {settings.raw_dataset}.{t} WHERE _synced_at >= {wh.placeholder}", (since,))[1]}
    wh.close()
    reported = {(m, t) for m, tables in run.changed_tables.items() for t in tables if t in RAW_INPUTS}
    assert reported == landed and {t for _, t in reported} == {"payments"}


def test_failures_stay_with_their_merchant_and_the_next_run_completes_them(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=62, profile="small", merchants=7, page_size=10))
    healthy = sb.merchants[:3]
    revoked, no_payouts, malformed, overloaded = sb.merchants[3:]
    settings = settings_for(sb, merchants=[m for m in sb.merchants if m != no_payouts], **WHOLE_HISTORY)
    # one merchant granted everything but payouts
    scopes = ["user-info:read", "user-contact:read", "payments:read", "products:read", "orders:read"]
    settings.refresh_tokens[no_payouts] = obtain_tokens(sb, no_payouts, scopes=scopes)["refresh_token"]
    settings = settings.with_overrides(merchants=tuple(sb.merchants))
    run = sync_merchants(settings)
    assert run.ok
    cursors = {m: cursor(settings, m, "payments") for m in sb.merchants}

    sb.advance(days=2)
    sb.revoke(merchant=revoked)
    sb.faults.add("malformed", endpoint="payments", merchant=malformed, skip=1, count=None)  # stays broken
    sb.faults.add("error", endpoint="orders", merchant=overloaded, status=503, count=None)  # retries run out
    run = sync_merchants(settings)
    results = {r.merchant: r for r in run.results}
    assert not run.ok
    for m in (*healthy, no_payouts):
        assert results[m].ok, results[m].error
    assert results[no_payouts].skipped == {"payouts": "scope payouts:read not granted"}
    assert "make authorize" in results[revoked].error and revoked in results[revoked].error
    assert "malformed JSON" in results[malformed].error and malformed in results[malformed].error
    assert "503" in results[overloaded].error and overloaded in results[overloaded].error
    # the failed listings' cursors did not move; the healthy merchants' did
    assert cursor(settings, revoked, "payments") == cursors[revoked]
    assert cursor(settings, malformed, "payments") == cursors[malformed]
    assert all(cursor(settings, m, "payments") > cursors[m] for m in healthy)
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [*healthy, no_payouts], tables=[
        "payments", "orders", "order_payments", "order_items", "products", "user_info"])
    # the failing merchants' listings that finished are exact
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [malformed], tables=["payouts", "products", "orders"])
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [overloaded], tables=["payouts", "payments", "products"])
    wh.close()

    # the faults go away, the merchant re-authorizes: the next run completes everyone
    sb.faults.clear()
    settings.refresh_tokens[revoked] = obtain_tokens(sb, revoked)["refresh_token"]
    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, [m for m in sb.merchants if m != no_payouts])
    assert count_where(wh, f"SELECT count(*) - count(DISTINCT (merchant, id)) FROM {settings.raw_dataset}.payments") == 0
    wh.close()


def test_old_products_that_change_are_caught_by_the_catalogue_read(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=62, profile="small", merchants=3, page_size=10))
    settings = settings_for(sb, products_full_read_hours=0)
    assert sync_merchants(settings).ok
    wh = open_test_warehouse(settings)
    before = dict(wh.query(f"SELECT merchant || '/' || slug, status FROM {settings.raw_dataset}.products")[1])
    wh.close()
    sb.advance(days=3)  # products created long ago get archived meanwhile
    changed = {f"{m}/{p['slug']}" for m in sb.merchants for p in sb.truth(m, "products")
               if before.get(f"{m}/{p['slug']}") not in (None, p["status"])}
    assert changed, "the sandbox should have changed some old products"
    assert sb.request_count(endpoint="products") > 0
    sb.reset_stats()
    assert sync_merchants(settings).ok
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants, tables=["products"])
    wh.close()


def test_a_second_merchant_of_a_run_is_not_held_up_by_a_slow_one(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=63, profile="small", merchants=4, page_size=25))
    slow = sb.merchants[0]
    sb.faults.add("slow", endpoint="payments", merchant=slow, delay=0.4, count=None)
    settings = settings_for(sb, merchant_concurrency=4)
    finished = []
    run = sync_merchants(settings, on_merchant_done=lambda notes: finished.append(notes.merchant))
    assert run.ok
    assert finished[-1] == slow  # the others finished while the slow one was still listing


def test_one_account_under_two_names_is_refused_and_nothing_of_it_loads_twice(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=64, profile="small", merchants=2, page_size=50))
    account, other = sb.merchants
    settings = settings_for(sb, merchants=[account, other])
    # a second local name, configured with a token the same account approved
    settings.refresh_tokens["second_name"] = obtain_tokens(sb, account)["refresh_token"]
    settings = settings.with_overrides(merchants=(account, other, "second_name"))
    run = sync_merchants(settings)
    results = {r.merchant: r for r in run.results}
    assert results[other].ok
    # neither name was synced before: the one reached first keeps the account, the other is refused
    [kept] = [n for n in (account, "second_name") if results[n].ok]
    [refused] = [n for n in (account, "second_name") if not results[n].ok]
    error = results[refused].error
    assert f"already synced as merchant {kept!r}" in error and repr(refused) in error and account in error
    wh = open_test_warehouse(settings)
    payments = len(sb.truth(account, "payments"))
    assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE merchant = '{refused}'") == 0
    assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments WHERE merchant = '{kept}'") == payments
    wh.close()
    # from now on the synced name is the account's: the other stays refused, run after run
    run = sync_merchants(settings)
    assert {r.merchant for r in run.results if not r.ok} == {refused}


def test_an_account_that_changes_behind_a_name_stops_that_merchant(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=65, profile="small", merchants=2, page_size=50))
    first, second = sb.merchants
    settings = settings_for(sb, merchants=[first])
    assert sync_merchants(settings).ok
    wh = open_test_warehouse(settings)
    before = count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments")
    wh.close()
    # the token configured for the name is now another account's (a copy-paste in secrets.toml)
    settings.refresh_tokens[first] = obtain_tokens(sb, second)["refresh_token"]
    [result] = sync_merchants(settings).results
    assert not result.ok
    assert f"belongs to the Instamojo account {second}" in result.error and f"authorized by {first}" in result.error
    wh = open_test_warehouse(settings)
    assert count_where(wh, f"SELECT count(*) FROM {settings.raw_dataset}.payments") == before
    wh.close()


def _busiest_second(log: list[dict], *, oauth: bool = False, window: float = 1.0) -> int:
    """The most API requests the sandbox saw in any `window` seconds (a sliding window)."""
    times = sorted(e["t"] for e in log if oauth or e["endpoint"] != "oauth_token")
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@HTTP_ONLY
def test_an_app_wide_rate_limit_is_held_and_no_merchant_is_starved(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=66, profile="small", merchants=6, days=8, page_size=10))
    settings = settings_for(sb, app_max_requests_per_second=25, merchant_concurrency=6, page_concurrency=4)
    sb.reset_stats()
    started = len(sb.request_log())
    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    log = sb.request_log()[started:]
    assert len(log) > 100
    # sent 40 ms apart; a loaded machine delays some sends (and the in-process sandbox's own
    # bookkeeping) more than others, so single seconds may see a few bunched: a third of slack
    # there, and over any three seconds a tenth (without the limit this run sends hundreds a second)
    assert _busiest_second(log, oauth=True) <= 25 * 1.3
    assert _busiest_second(log, oauth=True, window=3.0) <= 25 * 3 * 1.1
    assert sb.request_count(status=429) == 0
    # every merchant was served all along, not one after another: each one's requests span most of the run
    first, last = log[0]["t"], log[-1]["t"]
    for merchant in sb.merchants:
        own = [e["t"] for e in log if e["merchant"] == merchant]
        assert own[0] - first < (last - first) * 0.5, merchant


@HTTP_ONLY
def test_a_429_pauses_the_whole_app_instead_of_a_storm_of_retries(sandbox_factory, settings_for):
    # the API allows 15 requests/s for the app and the pipeline was told nothing: it meets 429s
    sb = sandbox_factory(SandboxConfig(seed=67, profile="small", merchants=6, days=8, page_size=10,
                                       app_rate_limit=15, app_rate_limit_burst=15))
    settings = settings_for(sb, merchant_concurrency=6, page_concurrency=4)
    run = sync_merchants(settings)
    assert run.ok, [r.error for r in run.results if not r.ok]
    refused = sb.request_count(status=429)
    served = sb.request_count(status=200)
    assert refused > 0  # it did run into the limit
    # each 429 closes the gate for its Retry-After: the refusals stay a small share of the traffic
    # (six merchants retrying on their own would meet the limit about as often as they are served)
    assert refused < served * 0.15, (refused, served)
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants, tables=["payouts", "orders"])
    wh.close()


@HTTP_ONLY
@pytest.mark.parametrize("honour_limit", [True, False])
def test_the_page_size_asked_for_is_used_and_a_listing_stays_complete_if_the_api_ignores_it(
        sandbox_factory, settings_for, honour_limit):
    sb = sandbox_factory(SandboxConfig(seed=68, profile="small", merchants=1, page_size=7, honour_limit=honour_limit))
    settings = settings_for(sb, page_size=40, **WHOLE_HISTORY)
    sb.reset_stats()
    start = len(sb.request_log())
    assert sync_merchants(settings).ok
    merchant = sb.merchants[0]
    payments = len(sb.truth(merchant, "payments"))
    asked = [e for e in sb.request_log()[start:] if e["endpoint"] == "payments"]
    pages = -(-payments // (40 if honour_limit else 7))
    assert len(asked) == pages, (len(asked), pages)
    wh = open_test_warehouse(settings)
    assert_warehouse_matches(wh, settings.raw_dataset, sb, sb.merchants)
    wh.close()


def test_success_false_inside_a_200_fails_the_listing_naming_the_message(sandbox_factory, settings_for):
    sb = sandbox_factory(SandboxConfig(seed=69, profile="small", merchants=2, page_size=10))
    broken = sb.merchants[1]
    settings = settings_for(sb)
    assert sync_merchants(settings).ok
    before = cursor(settings, broken, "orders")
    sb.advance(days=1)
    sb.faults.add("api_error", endpoint="orders", merchant=broken, message="Temporary glitch at the bank", count=None)
    results = {r.merchant: r for r in sync_merchants(settings).results}
    assert results[sb.merchants[0]].ok
    error = results[broken].error
    assert "success=false" in error and "Temporary glitch at the bank" in error and "/v2/orders/" in error
    assert cursor(settings, broken, "orders") == before


@pytest.mark.parametrize("keep_folders", [True, False])
def test_a_merchant_moving_to_another_shard_keeps_its_cursors(sandbox_factory, settings_for, keep_folders):
    import shutil

    sb = sandbox_factory(SandboxConfig(seed=70, profile="small", merchants=3, page_size=10))
    settings = settings_for(sb)
    a, b, c = sb.merchants
    assert sync_merchants(settings, [a, b], pipeline_name="instamojo__shard_00_of_02").ok
    assert sync_merchants(settings, [c], pipeline_name="instamojo__shard_01_of_02").ok
    before = {m: cursor(settings, m, "payments", "instamojo__shard_00_of_02" if m != c else "instamojo__shard_01_of_02")
              for m in sb.merchants}
    if not keep_folders:  # a fresh worker: only the destination remembers the shards' states
        for name in ("instamojo__shard_00_of_02", "instamojo__shard_01_of_02"):
            shutil.rmtree(settings.pipelines_dir / name)
    sb.advance(hours=6)
    sb.reset_stats()
    # one shard now: every merchant is new to its pipeline, none is backfilled
    run = sync_merchants(settings, sb.merchants, pipeline_name="instamojo__shard_00_of_01")
    assert run.ok, [r.error for r in run.results if not r.ok]
    for m in sb.merchants:
        pages = -(-len(sb.truth(m, "payments")) // sb.config.page_size)
        assert sb.request_count(merchant=m, endpoint="payments") < pages, m
        assert cursor(settings, m, "payments", "instamojo__shard_00_of_01") >= before[m]


@pytest.mark.slow
def test_fifty_runs_do_not_grow_the_pipelines_folder(sandbox_factory, tmp_path):
    sb = sandbox_factory(SandboxConfig(seed=71, profile="small", merchants=1, days=3, page_size=50))
    settings = pipeline_settings(sb, tmp_path)

    def size() -> int:
        return sum(p.stat().st_size for p in settings.pipelines_dir.rglob("*") if p.is_file() and p.name != "work.duckdb")

    sizes = []
    for run in range(50):
        assert sync_merchants(settings, resources=["payouts", "user_info"]).ok
        if run in (9, 49):
            sizes.append(size())
    loaded = settings.pipelines_dir / "instamojo__sync" / "load" / "loaded"
    assert len(list(loaded.iterdir())) <= 3
    assert sizes[1] <= sizes[0] * 1.1, sizes  # the 40 runs after the tenth added (almost) nothing
