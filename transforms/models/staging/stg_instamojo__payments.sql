-- Grain: one row per payment (merchant, payment_id).
-- The source merges payments on (merchant, id), so raw normally holds one row per payment. If it
-- ever holds more (a failed merge), the copy with the latest updated_at is kept here (the same
-- rule as the source's dedup_sort) and raw_copies > 1 raises a duplicate_payment exception.
WITH ranked AS (
    SELECT
        p.*,
        ROW_NUMBER() OVER (
            PARTITION BY p.merchant, p.id
            ORDER BY p.updated_at DESC NULLS LAST, p._synced_at DESC NULLS LAST,
                     p.payout_id DESC NULLS LAST, p.amount DESC NULLS LAST
        ) AS copy_rank,
        COUNT(*) OVER (PARTITION BY p.merchant, p.id) AS raw_copies
    FROM {{ source('payments') }} AS p
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
    CAST(created_at AT TIME ZONE {{ var('timezone') }} AS DATE) AS payment_date,
    updated_at,
    _synced_at AS synced_at,
    raw_copies
FROM ranked
WHERE copy_rank = 1
