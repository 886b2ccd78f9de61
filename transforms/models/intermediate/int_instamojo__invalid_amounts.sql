-- Grain: one row per money value reconciliation needs that is not a number
-- (merchant, entity, field). The source loads a money field the API sent as a non-number
-- (e.g. "N/A") as NULL and keeps its text in <column>__v_text; a NULL where the API must send
-- an amount is just as unusable. Checked: every payment amount; fees and taxes of successful
-- payments; every payout figure of the payout identity (shipping_fee only when it has text,
-- since it is outside the identity); every order amount; amounts of successful nested payments.
-- Reconciliation treats each such value as unknown, so it raises this one exception and no
-- other (sums over it are NULL, and checks over a NULL are skipped).
SELECT
    merchant,
    'payment' AS entity_type,
    payment_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payments.amount' AS field,
    amount__v_text AS raw_text,
    created_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
WHERE amount__v_text IS NOT NULL OR (amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payment' AS entity_type,
    payment_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payments.fees' AS field,
    fees__v_text AS raw_text,
    created_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
WHERE fees__v_text IS NOT NULL OR (fees IS NULL AND status = 'successful')
UNION ALL
SELECT
    merchant,
    'payment' AS entity_type,
    payment_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payments.total_taxes' AS field,
    total_taxes__v_text AS raw_text,
    created_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
WHERE total_taxes__v_text IS NOT NULL OR (taxes IS NULL AND status = 'successful')
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.paid_amount' AS field,
    paid_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE paid_amount__v_text IS NOT NULL OR (paid_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.sales_amount' AS field,
    sales_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE sales_amount__v_text IS NOT NULL OR (sales_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.fee_amount' AS field,
    fee_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE fee_amount__v_text IS NOT NULL OR (fee_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.total_tax_amount' AS field,
    total_tax_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE total_tax_amount__v_text IS NOT NULL OR (total_tax_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.held_amount' AS field,
    held_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE held_amount__v_text IS NOT NULL OR (held_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.reversed_amount' AS field,
    reversed_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE reversed_amount__v_text IS NOT NULL OR (reversed_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.refunded_amount' AS field,
    refunded_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE refunded_amount__v_text IS NOT NULL OR (refunded_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.affiliate_commission_amount' AS field,
    affiliate_commission_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE affiliate_commission_amount__v_text IS NOT NULL OR (affiliate_commission_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.partner_commission_amount' AS field,
    partner_commission_amount__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE partner_commission_amount__v_text IS NOT NULL OR (partner_commission_amount IS NULL AND TRUE)
UNION ALL
SELECT
    merchant,
    'payout' AS entity_type,
    payout_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'payouts.shipping_fee' AS field,
    shipping_fee__v_text AS raw_text,
    paid_out_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__payouts')) }} AS src
WHERE shipping_fee__v_text IS NOT NULL
UNION ALL
SELECT
    merchant,
    'order' AS entity_type,
    order_id AS entity_id,
    CAST(NULL AS TEXT) AS related_id,
    'orders.amount' AS field,
    order_amount__v_text AS raw_text,
    created_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__orders')) }} AS src
WHERE order_amount__v_text IS NOT NULL OR (order_amount IS NULL AND TRUE)
UNION ALL
SELECT
    op.merchant,
    'order' AS entity_type,
    op.order_id AS entity_id,
    op.payment_id AS related_id,
    'order_payments.amount' AS field,
    op.amount__v_text AS raw_text,
    o.created_at AS occurred_at
FROM {{ rebuilt(ref('stg_instamojo__order_payments')) }} AS op
LEFT JOIN {{ rebuilt(ref('stg_instamojo__orders')) }} AS o
    ON o.merchant = op.merchant AND o.order_id = op.order_id
WHERE op.amount__v_text IS NOT NULL OR (op.amount IS NULL AND op.is_successful)
{{ clustered_by_merchant() }}
