-- Grain: one row per payment nested in an order (merchant, order_id, payment_id), as the order
-- reports it; status is the order's own free text ("Success", "Failed", "Pending"). Copies in
-- raw (the source replaces an order's rows together, so there should be none): the latest
-- fetched is kept; only repeated keys are ranked (see payments).
WITH src AS (
    SELECT merchant, order_id, payment_id, amount, amount__v_text, status, _synced_at
    FROM {{ instamojo_raw('order_payments') }} AS op
),
copies AS (
    SELECT merchant, order_id, payment_id
    FROM src
    GROUP BY merchant, order_id, payment_id
    HAVING COUNT(*) > 1
),
deduplicated AS (
    SELECT src.*
    FROM src
    WHERE NOT EXISTS (
        SELECT 1 FROM copies
        WHERE copies.merchant = src.merchant AND copies.order_id = src.order_id
          AND copies.payment_id = src.payment_id
    )
    UNION ALL
    SELECT merchant, order_id, payment_id, amount, amount__v_text, status, _synced_at
    FROM (
        SELECT
            src.*,
            ROW_NUMBER() OVER (
                PARTITION BY src.merchant, src.order_id, src.payment_id
                ORDER BY src._synced_at DESC NULLS LAST, src.amount DESC NULLS LAST, src.status DESC NULLS LAST
            ) AS copy_rank
        FROM src
        JOIN copies
            ON copies.merchant = src.merchant AND copies.order_id = src.order_id
           AND copies.payment_id = src.payment_id
    ) AS ranked
    WHERE copy_rank = 1
)
SELECT
    merchant,
    order_id,
    payment_id,
    amount,
    amount__v_text,
    status AS api_payment_status,
    COALESCE(LOWER(TRIM(status)) = 'success', FALSE) AS is_successful
FROM deduplicated
{{ clustered_by_merchant() }}
