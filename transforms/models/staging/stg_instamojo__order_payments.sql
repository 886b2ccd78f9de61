-- Grain: one row per payment nested in an order (merchant, order_id, payment_id), as the order
-- reports it; status is the order's own free text ("Success", "Failed", "Pending").
WITH ranked AS (
    SELECT
        op.*,
        ROW_NUMBER() OVER (
            PARTITION BY op.merchant, op.order_id, op.payment_id
            ORDER BY op._synced_at DESC NULLS LAST, op.amount DESC NULLS LAST, op.status DESC NULLS LAST
        ) AS copy_rank
    FROM {{ source('order_payments') }} AS op
)
SELECT
    merchant,
    order_id,
    payment_id,
    amount,
    amount__v_text,
    status AS api_payment_status,
    COALESCE(LOWER(TRIM(status)) = 'success', FALSE) AS is_successful
FROM ranked
WHERE copy_rank = 1
