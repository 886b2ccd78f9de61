-- Grain: one row per payment that some order lists among its nested payments
-- (merchant, payment_id). A payment listed by two orders keeps the smallest order id here and
-- raises a duplicate_payment exception.
SELECT
    merchant,
    payment_id,
    MIN(order_id) AS order_id,
    MAX(order_id) AS last_order_id,
    -- staging holds one row per (merchant, order_id, payment_id): rows = distinct orders
    COUNT(*) AS orders_count
FROM {{ rebuilt(ref('stg_instamojo__order_payments')) }} AS src
GROUP BY merchant, payment_id
{{ clustered_by_merchant() }}
