-- Must return zero rows: per merchant, payout_reconciliation holds as many payouts and as much
-- money (paid, sales, held, reversed, refunded) as the raw payouts table.
WITH raw AS (
    SELECT merchant, COUNT(*) AS n, SUM(paid_amount) AS paid, SUM(sales_amount) AS sales,
           SUM(held_amount) AS held, SUM(reversed_amount) AS reversed, SUM(refunded_amount) AS refunded
    FROM {{ instamojo_raw('payouts') }} AS p
    GROUP BY merchant
),
mart AS (
    SELECT merchant, COUNT(*) AS n, SUM(paid_amount) AS paid, SUM(sales_amount) AS sales,
           SUM(held_amount) AS held, SUM(reversed_amount) AS reversed, SUM(refunded_amount) AS refunded
    FROM {{ ref('payout_reconciliation') }}
    GROUP BY merchant
)
SELECT
    COALESCE(raw.merchant, mart.merchant) AS merchant,
    raw.n AS raw_count, mart.n AS mart_count,
    raw.paid AS raw_paid, mart.paid AS mart_paid
FROM raw
FULL OUTER JOIN mart ON mart.merchant = raw.merchant
WHERE raw.n IS DISTINCT FROM mart.n
   OR raw.paid IS DISTINCT FROM mart.paid
   OR raw.sales IS DISTINCT FROM mart.sales
   OR raw.held IS DISTINCT FROM mart.held
   OR raw.reversed IS DISTINCT FROM mart.reversed
   OR raw.refunded IS DISTINCT FROM mart.refunded
