-- Grain: one row per payout (merchant, payout_id).
-- The identity between a payout's figures is not published; the working hypothesis
-- (docs/marts.md) is  paid = sales − fee − tax − held + reversed − refunded − affiliate − partner,
-- shipping_fee outside it. The residual says how far each payout is from it: never assumed.
SELECT {{ typed_columns() }}
FROM (
    WITH joined AS (
        SELECT
            p.*,
            m.has_payments AS payments_synced,
            COALESCE(t.linked_payments_count, 0) AS linked_payments_count,
            COALESCE(t.linked_unsuccessful_count, 0) AS linked_unsuccessful_count,
            COALESCE(t.linked_successful_count, 0) AS linked_successful_count,
            -- no linked payment at all: the sums are a known zero, not unknown
            CASE WHEN t.payout_id IS NULL THEN CAST(0 AS DECIMAL(18,2)) ELSE t.linked_amount END AS linked_amount,
            CASE WHEN t.payout_id IS NULL THEN CAST(0 AS DECIMAL(18,2)) ELSE t.linked_fees END AS linked_fees,
            CASE WHEN t.payout_id IS NULL THEN CAST(0 AS DECIMAL(18,2)) ELSE t.linked_taxes END AS linked_taxes,
            p.sales_amount - p.fee_amount - p.total_tax_amount - p.held_amount + p.reversed_amount
                - p.refunded_amount - p.affiliate_commission_amount - p.partner_commission_amount
                AS expected_paid_amount
        FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS p
        JOIN {{ rebuilt(ref('int_instamojo__merchants')) }} AS m
            ON m.merchant = p.merchant
        LEFT JOIN {{ rebuilt(ref('int_instamojo__payout_payment_totals')) }} AS t
            ON t.merchant = p.merchant AND t.payout_id = p.payout_id
    ),
    measured AS (
        SELECT
            *,
            linked_amount - linked_fees - linked_taxes AS linked_net_amount,
            paid_amount - expected_paid_amount AS residual,
            sales_amount - linked_amount AS sales_difference
        FROM joined
    )
    SELECT
        merchant,
        payout_id,
        payout_status,
        payout_type,
        currency,
        paid_out_at,
        paid_out_date,
        paid_amount,
        sales_amount,
        fee_amount,
        total_tax_amount,
        held_amount,
        reversed_amount,
        refunded_amount,
        affiliate_commission_amount,
        partner_commission_amount,
        shipping_fee,
        linked_payments_count,
        linked_unsuccessful_count,
        linked_amount,
        linked_fees,
        linked_taxes,
        linked_net_amount,
        expected_paid_amount,
        residual,
        sales_difference,
        payments_synced,
        CASE
            WHEN ABS(residual) > {{ instamojo_money_var('instamojo_payout_tolerance') }} THEN 'residual'
            WHEN payments_synced AND linked_successful_count = 0
                AND ABS(sales_amount) > {{ instamojo_money_var('instamojo_payout_tolerance') }} THEN 'no_payments_linked'
            WHEN payments_synced AND ABS(sales_difference) > {{ instamojo_money_var('instamojo_payout_tolerance') }} THEN 'payments_missing'
            WHEN residual IS NULL OR (payments_synced AND sales_difference IS NULL) THEN 'amount_invalid'
            ELSE 'balanced'
        END AS status
    FROM measured
) AS final
{{ clustered_by_merchant() }}
