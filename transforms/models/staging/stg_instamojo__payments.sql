-- Grain: one row per payment (merchant, payment_id).
-- The source merges payments on (merchant, id), so raw normally holds one row per payment. If it
-- ever holds more (a failed merge), the copy with the latest updated_at is kept here (the same
-- rule as the source's dedup_sort) and raw_copies > 1 raises a duplicate_payment exception.
-- Only repeated keys go through the window function: over a million rows that are all unique,
-- ranking every row would cost more than the rest of this model.
WITH src AS (
    SELECT
        merchant, id, status, currency, amount, fees, total_taxes,
        amount__v_text, fees__v_text, total_taxes__v_text,
        payout_id, created_at, updated_at, _synced_at
    FROM {{ instamojo_raw('payments') }} AS p
),
copies AS (
    SELECT merchant, id, COUNT(*) AS raw_copies
    FROM src
    GROUP BY merchant, id
    HAVING COUNT(*) > 1
),
repeated AS (
    SELECT *
    FROM (
        SELECT
            src.*,
            copies.raw_copies,
            ROW_NUMBER() OVER (
                PARTITION BY src.merchant, src.id
                ORDER BY src.updated_at DESC NULLS LAST, src._synced_at DESC NULLS LAST,
                         src.payout_id DESC NULLS LAST, src.amount DESC NULLS LAST
            ) AS copy_rank
        FROM src
        JOIN copies ON copies.merchant = src.merchant AND copies.id = src.id
    ) AS ranked
    WHERE copy_rank = 1
),
deduplicated AS (
    SELECT src.*, 1 AS raw_copies
    FROM src
    WHERE NOT EXISTS (SELECT 1 FROM copies WHERE copies.merchant = src.merchant AND copies.id = src.id)
    UNION ALL
    SELECT
        merchant, id, status, currency, amount, fees, total_taxes,
        amount__v_text, fees__v_text, total_taxes__v_text,
        payout_id, created_at, updated_at, _synced_at, raw_copies
    FROM repeated
)
SELECT
    merchant,
    id AS payment_id,
    -- Instamojo: status true = successful, false = failed, null = pending/initiated
    CASE
        WHEN status IS TRUE THEN 'successful'
        WHEN status IS FALSE THEN 'failed'
        ELSE 'pending'
    END AS status,
    currency,
    amount,
    fees,
    total_taxes AS taxes,
    amount__v_text,
    fees__v_text,
    total_taxes__v_text,
    NULLIF(TRIM(payout_id), '') AS payout_id,
    created_at,
    CAST(created_at AT TIME ZONE {{ instamojo_timezone() }} AS DATE) AS payment_date,
    updated_at,
    _synced_at AS synced_at,
    raw_copies
FROM deduplicated
{{ clustered_by_merchant() }}
