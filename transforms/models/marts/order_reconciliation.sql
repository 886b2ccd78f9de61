-- Grain: one row per order (merchant, order_id).
-- What the order's successful payments say (payments_status) against what the API's
-- order_status says; they must agree: Fully Paid <-> paid or overpaid, Partially Paid <->
-- partially_paid, Pending <-> unpaid. A NULL API status claims nothing; any other text disagrees.
SELECT {{ typed_columns() }}
FROM (
    WITH joined AS (
        SELECT
            o.merchant,
            o.order_id,
            o.title,
            o.currency,
            o.created_at,
            o.order_amount,
            o.api_order_status,
            COALESCE(t.payments_count, 0) AS payments_count,
            COALESCE(t.successful_payments_count, 0) AS successful_payments_count,
            CASE WHEN t.order_id IS NULL THEN CAST(0 AS DECIMAL(18,2)) ELSE t.successful_amount END AS successful_amount
        FROM {{ rebuilt(ref('stg_instamojo__orders')) }} AS o
        LEFT JOIN {{ rebuilt(ref('int_instamojo__order_payment_totals')) }} AS t
            ON t.merchant = o.merchant AND t.order_id = o.order_id
    ),
    classified AS (
        SELECT
            *,
            order_amount - successful_amount AS balance_due,
            CASE
                WHEN order_amount IS NULL OR successful_amount IS NULL THEN NULL
                WHEN ABS(order_amount - successful_amount) <= {{ instamojo_money_var('instamojo_order_tolerance') }} THEN 'paid'
                WHEN successful_amount = 0 THEN 'unpaid'
                WHEN order_amount - successful_amount > 0 THEN 'partially_paid'
                ELSE 'overpaid'
            END AS payments_status,
            LOWER(TRIM(api_order_status)) AS api_status_key
        FROM joined
    )
    SELECT
        merchant,
        order_id,
        title,
        currency,
        created_at,
        order_amount,
        api_order_status,
        payments_count,
        successful_payments_count,
        successful_amount,
        balance_due,
        payments_status,
        CASE
            WHEN payments_status IS NULL THEN 'amount_invalid'
            WHEN api_status_key IS NULL THEN payments_status
            WHEN api_status_key = 'fully paid' AND payments_status IN ('paid', 'overpaid') THEN payments_status
            WHEN api_status_key = 'partially paid' AND payments_status = 'partially_paid' THEN payments_status
            WHEN api_status_key = 'pending' AND payments_status = 'unpaid' THEN payments_status
            ELSE 'status_mismatch'
        END AS status
    FROM classified
) AS final
{{ clustered_by_merchant() }}
