-- Must return zero rows: per merchant, order_reconciliation holds as many orders and as much
-- money as the raw orders table, and counts as many successful nested payments as
-- order_payments holds for those orders.
WITH raw AS (
    SELECT merchant, COUNT(*) AS n, SUM(amount) AS amount
    FROM {{ instamojo_raw('orders') }} AS o
    GROUP BY merchant
),
raw_paid AS (
    SELECT op.merchant, COUNT(*) AS n
    FROM {{ instamojo_raw('order_payments') }} AS op
    JOIN {{ instamojo_raw('orders') }} AS o
        ON o.merchant = op.merchant AND o.id = op.order_id
    WHERE LOWER(TRIM(op.status)) = 'success'
    GROUP BY op.merchant
),
mart AS (
    SELECT merchant, COUNT(*) AS n, SUM(order_amount) AS amount,
           SUM(successful_payments_count) AS paid_n
    FROM {{ ref('order_reconciliation') }}
    GROUP BY merchant
)
SELECT
    COALESCE(raw.merchant, mart.merchant) AS merchant,
    raw.n AS raw_count, mart.n AS mart_count,
    raw.amount AS raw_amount, mart.amount AS mart_amount
FROM raw
LEFT JOIN raw_paid ON raw_paid.merchant = raw.merchant
FULL OUTER JOIN mart ON mart.merchant = raw.merchant
WHERE raw.n IS DISTINCT FROM mart.n
   OR raw.amount IS DISTINCT FROM mart.amount
   OR COALESCE(raw_paid.n, 0) <> COALESCE(mart.paid_n, 0)
