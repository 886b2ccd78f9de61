-- Must return zero rows: per merchant, the daily summary's gross and paid-out totals equal the
-- raw successful payments' amounts and the raw paid-out payouts' paid amounts.
WITH raw_sales AS (
    SELECT merchant, COUNT(*) AS n, SUM(amount) AS gross
    FROM {{ instamojo_raw('payments') }} AS p
    WHERE status IS TRUE
    GROUP BY merchant
),
raw_payouts AS (
    SELECT merchant, COUNT(*) AS n, SUM(paid_amount) AS paid
    FROM {{ instamojo_raw('payouts') }} AS p
    WHERE paid_out_at IS NOT NULL
    GROUP BY merchant
),
raw AS (
    SELECT
        COALESCE(s.merchant, p.merchant) AS merchant,
        COALESCE(s.n, 0) AS sales_n, COALESCE(s.gross, 0) AS gross,
        COALESCE(p.n, 0) AS payouts_n, COALESCE(p.paid, 0) AS paid
    FROM raw_sales AS s
    FULL OUTER JOIN raw_payouts AS p ON p.merchant = s.merchant
),
mart AS (
    SELECT merchant, SUM(successful_payments_count) AS sales_n, SUM(gross_amount) AS gross,
           SUM(payouts_count) AS payouts_n, SUM(paid_out_amount) AS paid
    FROM {{ ref('daily_settlement_summary') }}
    GROUP BY merchant
)
SELECT
    COALESCE(raw.merchant, mart.merchant) AS merchant,
    raw.gross AS raw_gross, mart.gross AS mart_gross,
    raw.paid AS raw_paid_out, mart.paid AS mart_paid_out
FROM raw
FULL OUTER JOIN mart ON mart.merchant = raw.merchant
WHERE COALESCE(raw.sales_n, 0) <> COALESCE(mart.sales_n, 0)
   OR COALESCE(raw.gross, 0) <> COALESCE(mart.gross, 0)
   OR COALESCE(raw.payouts_n, 0) <> COALESCE(mart.payouts_n, 0)
   OR COALESCE(raw.paid, 0) <> COALESCE(mart.paid, 0)
