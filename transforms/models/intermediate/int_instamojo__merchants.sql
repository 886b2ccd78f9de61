-- Grain: one row per merchant found in the raw payments, payouts or orders.
-- Says which endpoints hold data for the merchant (a merchant may not have granted every scope,
-- and then checks that need the missing side are skipped rather than raising false exceptions),
-- and the as-of moment its overdue checks use: transforms.as_of if it is a date-time; else
-- "latest_sync" (when the merchant's data was last fetched) or "latest_activity" (the newest
-- event in its data); else, with no such time in its rows, the build's clock.
WITH seen AS (
    SELECT merchant FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
    UNION
    SELECT merchant FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
    UNION
    SELECT merchant FROM {{ rebuilt(ref('stg_instamojo__orders')) }} AS src
),
payments AS (
    SELECT
        merchant,
        COUNT(*) AS payments_count,
        MAX(synced_at) AS last_synced_at,
        GREATEST(MAX(created_at), MAX(updated_at)) AS last_activity_at
    FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
    GROUP BY merchant
),
payouts AS (
    SELECT merchant, COUNT(*) AS payouts_count, MAX(synced_at) AS last_synced_at, MAX(paid_out_at) AS last_activity_at
    FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
    GROUP BY merchant
),
orders AS (
    SELECT merchant, COUNT(*) AS orders_count, MAX(synced_at) AS last_synced_at, MAX(created_at) AS last_activity_at
    FROM {{ rebuilt(ref('stg_instamojo__orders')) }} AS src
    GROUP BY merchant
),
coverage AS (
    SELECT
        seen.merchant,
        COALESCE(payments.payments_count, 0) > 0 AS has_payments,
        COALESCE(payouts.payouts_count, 0) > 0 AS has_payouts,
        COALESCE(orders.orders_count, 0) > 0 AS has_orders,
        -- GREATEST ignores NULLs on both DuckDB and Postgres
        GREATEST(payments.last_synced_at, payouts.last_synced_at, orders.last_synced_at) AS last_synced_at,
        GREATEST(payments.last_activity_at, payouts.last_activity_at, orders.last_activity_at) AS last_activity_at
    FROM seen
    LEFT JOIN payments ON payments.merchant = seen.merchant
    LEFT JOIN payouts ON payouts.merchant = seen.merchant
    LEFT JOIN orders ON orders.merchant = seen.merchant
),
as_of AS (
    SELECT
        *,
        COALESCE(
            {{ instamojo_as_of() }},
            CASE WHEN {{ instamojo_as_of_mode() }} = 'latest_activity' THEN last_activity_at ELSE last_synced_at END,
            {{ instamojo_run_time() }}
        ) AS as_of
    FROM coverage
)
SELECT
    merchant,
    has_payments,
    has_payouts,
    has_orders,
    as_of,
    CAST(as_of AT TIME ZONE {{ instamojo_timezone() }} AS DATE) AS as_of_date
FROM as_of
{{ clustered_by_merchant() }}
