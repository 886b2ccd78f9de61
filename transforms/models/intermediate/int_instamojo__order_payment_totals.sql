-- Grain: one row per order that lists nested payments (merchant, order_id): what the order's
-- own payments say it received. Amounts are the order's nested copies (status "Success").
SELECT
    merchant,
    order_id,
    COUNT(*) AS payments_count,
    COUNT(*) FILTER (WHERE is_successful) AS successful_payments_count,
    CASE
        WHEN COUNT(*) FILTER (WHERE is_successful AND amount IS NULL) > 0 THEN NULL
        ELSE COALESCE(SUM(amount) FILTER (WHERE is_successful), CAST(0 AS DECIMAL(18,2)))
    END AS successful_amount
FROM {{ rebuilt(ref('stg_instamojo__order_payments')) }} AS src
GROUP BY merchant, order_id
{{ clustered_by_merchant() }}
