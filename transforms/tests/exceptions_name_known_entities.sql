-- Must return zero rows: every exception names a payment, payout or order that is in its mart.
SELECT e.merchant, e.exception_id
FROM {{ ref('reconciliation_exceptions') }} AS e
LEFT JOIN {{ ref('payments_reconciled') }} AS p
    ON e.entity_type = 'payment' AND p.merchant = e.merchant AND p.payment_id = e.entity_id
LEFT JOIN {{ ref('payout_reconciliation') }} AS po
    ON e.entity_type = 'payout' AND po.merchant = e.merchant AND po.payout_id = e.entity_id
LEFT JOIN {{ ref('order_reconciliation') }} AS o
    ON e.entity_type = 'order' AND o.merchant = e.merchant AND o.order_id = e.entity_id
WHERE p.payment_id IS NULL AND po.payout_id IS NULL AND o.order_id IS NULL
