-- Must return zero rows: per merchant and status, payments_reconciled holds as many payments
-- and as much money as the raw payments table.
WITH raw AS (
    SELECT
        merchant,
        CASE WHEN status IS TRUE THEN 'successful' WHEN status IS FALSE THEN 'failed' ELSE 'pending' END AS status,
        COUNT(*) AS n,
        SUM(amount) AS amount,
        SUM(fees) AS fees,
        SUM(total_taxes) AS taxes
    FROM {{ instamojo_raw('payments') }} AS p
    GROUP BY 1, 2
),
mart AS (
    SELECT merchant, status, COUNT(*) AS n, SUM(amount) AS amount, SUM(fees) AS fees, SUM(taxes) AS taxes
    FROM {{ ref('payments_reconciled') }}
    GROUP BY merchant, status
)
SELECT
    COALESCE(raw.merchant, mart.merchant) AS merchant,
    COALESCE(raw.status, mart.status) AS status,
    raw.n AS raw_count, mart.n AS mart_count,
    raw.amount AS raw_amount, mart.amount AS mart_amount
FROM raw
FULL OUTER JOIN mart
    ON mart.merchant = raw.merchant AND mart.status = raw.status
WHERE raw.n IS DISTINCT FROM mart.n
   OR raw.amount IS DISTINCT FROM mart.amount
   OR raw.fees IS DISTINCT FROM mart.fees
   OR raw.taxes IS DISTINCT FROM mart.taxes
