-- Grain: one row per order (merchant, order_id); copies in raw: the latest fetched is kept.
WITH ranked AS (
    SELECT
        o.*,
        ROW_NUMBER() OVER (
            PARTITION BY o.merchant, o.id
            ORDER BY o._synced_at DESC NULLS LAST, o.amount DESC NULLS LAST, o.order_status DESC NULLS LAST
        ) AS copy_rank
    FROM {{ source('orders') }} AS o
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
    order_status AS api_order_status
FROM ranked
WHERE copy_rank = 1
