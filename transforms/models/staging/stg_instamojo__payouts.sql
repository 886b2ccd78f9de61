-- Grain: one row per payout (merchant, payout_id). Raw is merged on (merchant, id); should it
-- hold copies, the latest fetched one is kept (the integrity query comparing raw and mart totals
-- fails on such copies, so they do not go unnoticed).
WITH ranked AS (
    SELECT
        p.*,
        ROW_NUMBER() OVER (
            PARTITION BY p.merchant, p.id
            ORDER BY p._synced_at DESC NULLS LAST, p.paid_out_at DESC NULLS LAST,
                     p.paid_amount DESC NULLS LAST
        ) AS copy_rank
    FROM {{ instamojo_raw('payouts') }} AS p
)
SELECT
    merchant,
    id AS payout_id,
    status AS payout_status,
    payout_type,
    currency,
    paid_out_at,
    CAST(paid_out_at AT TIME ZONE {{ instamojo_timezone() }} AS DATE) AS paid_out_date,
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
    paid_amount__v_text,
    sales_amount__v_text,
    fee_amount__v_text,
    total_tax_amount__v_text,
    held_amount__v_text,
    reversed_amount__v_text,
    refunded_amount__v_text,
    affiliate_commission_amount__v_text,
    partner_commission_amount__v_text,
    shipping_fee__v_text,
    _synced_at AS synced_at
FROM ranked
WHERE copy_rank = 1
{{ clustered_by_merchant() }}
