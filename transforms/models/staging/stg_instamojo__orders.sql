-- Grain: one row per order (merchant, order_id). Raw is merged on (merchant, id); should it hold
-- copies, the latest fetched one is kept (the integrity query comparing raw and mart totals fails
-- on such copies, so they do not go unnoticed). Only repeated keys are ranked (see payments).
WITH src AS (
    SELECT merchant, id, title, currency, created_at, amount, amount__v_text, order_status, _synced_at
    FROM {{ instamojo_raw('orders') }} AS o
),
copies AS (
    SELECT merchant, id FROM src GROUP BY merchant, id HAVING COUNT(*) > 1
),
deduplicated AS (
    SELECT src.*
    FROM src
    WHERE NOT EXISTS (SELECT 1 FROM copies WHERE copies.merchant = src.merchant AND copies.id = src.id)
    UNION ALL
    SELECT merchant, id, title, currency, created_at, amount, amount__v_text, order_status, _synced_at
    FROM (
        SELECT
            src.*,
            ROW_NUMBER() OVER (
                PARTITION BY src.merchant, src.id
                ORDER BY src._synced_at DESC NULLS LAST, src.amount DESC NULLS LAST,
                         src.order_status DESC NULLS LAST
            ) AS copy_rank
        FROM src
        JOIN copies ON copies.merchant = src.merchant AND copies.id = src.id
    ) AS ranked
    WHERE copy_rank = 1
)
SELECT
    merchant,
    id AS order_id,
    title,
    currency,
    created_at,
    amount AS order_amount,
    amount__v_text AS order_amount__v_text,
    -- free text in the API ("Pending", "Partially Paid", "Fully Paid"): compared normalised
    order_status AS api_order_status,
    _synced_at AS synced_at
FROM deduplicated
{{ clustered_by_merchant() }}
