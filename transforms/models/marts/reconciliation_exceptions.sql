-- Grain: one row per thing that needs a human (merchant, exception_id).
-- Each check below is independent and each anomaly is designed to trip exactly one of them:
-- a value that is not a number makes every figure computed from it unknown (NULL), and the
-- other checks skip unknown figures, so it yields invalid_amount only; an under-paid order is
-- either normal (the API agrees it is not fully paid) or an order_status_mismatch, never also
-- an "under-paid" row; order_overpaid is only raised when the API's status agrees.
-- Amounts are rendered with CAST(… AS TEXT), which prints DECIMAL(18,2) the same way
-- ("1000.00") on DuckDB and Postgres.
SELECT {{ typed_columns() }}
FROM (

    -- orphan_payment: the payment names a payout that is not among the merchant's payouts.
    -- Skipped for a merchant with no payouts at all (payouts:read not granted or not synced yet:
    -- every paid-out payment would be an orphan, which says nothing about any one of them).
    SELECT
        p.merchant,
        'orphan_payment:' || p.payment_id AS exception_id,
        'orphan_payment' AS exception_type,
        'high' AS severity,
        'payment' AS entity_type,
        p.payment_id AS entity_id,
        p.payout_id AS related_id,
        p.amount AS amount_at_stake,
        p.created_at AS occurred_at,
        'payment ' || p.payment_id || ' (' || COALESCE(CAST(p.amount AS TEXT), 'amount unknown')
            || ') names payout ' || p.payout_id || ', which is not among the merchant''s payouts'
            AS explanation
    FROM {{ rebuilt(ref('payments_reconciled')) }} AS p
    JOIN {{ rebuilt(ref('int_instamojo__merchants')) }} AS m
        ON m.merchant = p.merchant
    WHERE p.payout_found IS FALSE AND m.has_payouts

    UNION ALL

    -- failed_payment_in_payout: a failed or pending payment linked to a (synced) payout.
    SELECT
        merchant,
        'failed_payment_in_payout:' || payment_id,
        'failed_payment_in_payout',
        'high',
        'payment',
        payment_id,
        payout_id,
        amount,
        created_at,
        status || ' payment ' || payment_id || ' (' || COALESCE(CAST(amount AS TEXT), 'amount unknown')
            || ') is linked to payout ' || payout_id || '; only successful payments are paid out'
    FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
    WHERE status <> 'successful' AND payout_found IS TRUE

    UNION ALL

    -- overdue_settlement: successful, no payout, and the grace after the expected date has passed.
    SELECT
        merchant,
        'overdue_settlement:' || payment_id,
        'overdue_settlement',
        'high',
        'payment',
        payment_id,
        CAST(NULL AS TEXT),
        amount,
        created_at,
        'successful payment ' || payment_id || ' of ' || CAST(payment_date AS TEXT)
            || ' (' || COALESCE(CAST(amount AS TEXT), 'amount unknown') || ') was due in a payout on '
            || CAST(expected_payout_date AS TEXT) || ' and has none at ' || CAST(as_of_date AS TEXT)
            || ' (' || CAST(business_days_late AS TEXT) || ' business days late)'
    FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
    WHERE settlement_state = 'overdue'

    UNION ALL

    -- late_settlement: paid out, but after the expected date plus the grace.
    SELECT
        merchant,
        'late_settlement:' || payment_id,
        'late_settlement',
        'low',
        'payment',
        payment_id,
        payout_id,
        amount,
        created_at,
        'payment ' || payment_id || ' of ' || CAST(payment_date AS TEXT) || ' was due in a payout on '
            || CAST(expected_payout_date AS TEXT) || ' but payout ' || payout_id || ' came on '
            || CAST(paid_out_date AS TEXT) || ' (' || CAST(business_days_late AS TEXT) || ' business days late)'
    FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
    WHERE settlement_state = 'settled' AND paid_out_date > overdue_after_date

    UNION ALL

    -- duplicate_payment (raw copies): the source merges on (merchant, id); copies mean it did not.
    SELECT
        merchant,
        'duplicate_payment:' || payment_id || ':raw',
        'duplicate_payment',
        'medium',
        'payment',
        payment_id,
        CAST(NULL AS TEXT),
        amount,
        created_at,
        'payment ' || payment_id || ' appears ' || CAST(raw_copies AS TEXT)
            || ' times in the raw payments; the copy updated last is used'
    FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
    WHERE raw_copies > 1

    UNION ALL

    -- duplicate_payment (in several orders): one payment cannot pay two orders. The entity is the
    -- last order listing it (the payment is attributed to the first), so the row names an entity
    -- that exists even when the merchant's payments are not synced.
    SELECT
        po.merchant,
        'duplicate_payment:' || po.payment_id || ':orders',
        'duplicate_payment',
        'medium',
        'order',
        po.last_order_id,
        po.payment_id,
        p.amount,
        p.created_at,
        'payment ' || po.payment_id || ' is listed by ' || CAST(po.orders_count AS TEXT)
            || ' orders (' || po.order_id || ' … ' || po.last_order_id || '); it is attributed to ' || po.order_id
    FROM {{ rebuilt(ref('int_instamojo__payment_orders')) }} AS po
    LEFT JOIN {{ rebuilt(ref('stg_instamojo__payments')) }} AS p
        ON p.merchant = po.merchant AND p.payment_id = po.payment_id
    WHERE po.orders_count > 1

    UNION ALL

    -- payout_residual: the payout's own figures do not satisfy the working identity.
    SELECT
        merchant,
        'payout_residual:' || payout_id,
        'payout_residual',
        'high',
        'payout',
        payout_id,
        CAST(NULL AS TEXT),
        ABS(residual),
        paid_out_at,
        'payout ' || payout_id || ' paid ' || CAST(paid_amount AS TEXT) || ' but its figures give '
            || CAST(expected_paid_amount AS TEXT) || ' (residual ' || CAST(residual AS TEXT) || ')'
    FROM {{ rebuilt(ref('payout_reconciliation')) }} AS src
    WHERE ABS(residual) > {{ instamojo_money_var('instamojo_payout_tolerance') }}

    UNION ALL

    -- payout_payments_missing: sales_amount differs from the payments linked to the payout
    -- (status payments_missing, or no_payments_linked when none are). Skipped for a merchant whose
    -- payments are not in the warehouse.
    SELECT
        merchant,
        'payout_payments_missing:' || payout_id,
        'payout_payments_missing',
        'medium',
        'payout',
        payout_id,
        CAST(NULL AS TEXT),
        ABS(sales_difference),
        paid_out_at,
        'payout ' || payout_id || ' reports sales of ' || CAST(sales_amount AS TEXT)
            || ' but its linked successful payments ('
            || CAST(linked_payments_count - linked_unsuccessful_count AS TEXT)
            || ') sum to ' || CAST(linked_amount AS TEXT)
            || ' (difference ' || CAST(sales_difference AS TEXT) || ')'
    FROM {{ rebuilt(ref('payout_reconciliation')) }} AS src
    WHERE payments_synced AND ABS(sales_difference) > {{ instamojo_money_var('instamojo_payout_tolerance') }}

    UNION ALL

    -- order_status_mismatch: the API's order status disagrees with the order's payments. High when
    -- the API claims more money than the payments show (money may be missing), else medium (the
    -- API's status lags behind payments that did arrive).
    SELECT
        merchant,
        'order_status_mismatch:' || order_id,
        'order_status_mismatch',
        CASE WHEN balance_due > {{ instamojo_money_var('instamojo_order_tolerance') }} AND LOWER(TRIM(api_order_status)) = 'fully paid'
            THEN 'high' ELSE 'medium' END,
        'order',
        order_id,
        CAST(NULL AS TEXT),
        ABS(balance_due),
        created_at,
        'order ' || order_id || ' is "' || api_order_status || '" per the API but its successful payments ('
            || CAST(successful_payments_count AS TEXT) || ') sum to '
            || CAST(successful_amount AS TEXT) || ' of ' || CAST(order_amount AS TEXT)
            || ' (balance due ' || CAST(balance_due AS TEXT) || ')'
    FROM {{ rebuilt(ref('order_reconciliation')) }} AS src
    WHERE status = 'status_mismatch'

    UNION ALL

    -- order_overpaid: successful payments exceed the order's amount (and the API agrees it is paid).
    SELECT
        merchant,
        'order_overpaid:' || order_id,
        'order_overpaid',
        'medium',
        'order',
        order_id,
        CAST(NULL AS TEXT),
        -balance_due,
        created_at,
        'order ' || order_id || ' of ' || CAST(order_amount AS TEXT) || ' received '
            || CAST(successful_amount AS TEXT) || ' in successful payments ('
            || CAST(successful_payments_count AS TEXT) || '), overpaid by ' || CAST(-balance_due AS TEXT)
    FROM {{ rebuilt(ref('order_reconciliation')) }} AS src
    WHERE status = 'overpaid'

    UNION ALL

    -- invalid_amount: a money value reconciliation needs is not a number (see the model).
    SELECT
        merchant,
        'invalid_amount:' || entity_id || ':' || field || COALESCE(':' || related_id, ''),
        'invalid_amount',
        'high',
        entity_type,
        entity_id,
        related_id,
        CAST(NULL AS DECIMAL(18,2)),
        occurred_at,
        field || ' of ' || entity_type || ' ' || entity_id
            || COALESCE(' (payment ' || related_id || ')', '')
            || CASE
                WHEN raw_text IS NULL THEN ' is missing (NULL)'
                ELSE ' is not a number: "' || SUBSTR(raw_text, 1, 40) || '"'
            END
    FROM {{ rebuilt(ref('int_instamojo__invalid_amounts')) }} AS src
) AS final
{{ clustered_by_merchant() }}
