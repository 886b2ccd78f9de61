-- Grain: one row per payment (merchant, payment_id).
-- Settlement rule (docs/marts.md; the sandbox implements the same, docs/api-behaviour.md): a
-- successful payment is expected in a payout on the 3rd business day strictly after its date in
-- Asia/Kolkata; business days skip weekends and Indian national holidays. The calendar model
-- holds that answer for every date, so the rule is a join here, not a computation per payment.
SELECT {{ typed_columns() }}
FROM (
    WITH joined AS (
        SELECT
            p.merchant,
            p.payment_id,
            po.order_id,
            p.payout_id,
            CASE WHEN p.payout_id IS NULL THEN NULL ELSE payout.payout_id IS NOT NULL END AS payout_found,
            p.status,
            p.currency,
            p.amount,
            p.fees,
            p.taxes,
            p.amount - p.fees - p.taxes AS net_amount,
            p.created_at,
            p.payment_date,
            CASE WHEN p.status = 'successful' THEN cal.expected_payout_date END AS expected_payout_date,
            CASE WHEN p.status = 'successful' THEN cal.overdue_after_date END AS overdue_after_date,
            payout.paid_out_at,
            payout.paid_out_date,
            m.as_of_date,
            expected.business_day_number AS expected_day_number,
            paid.business_day_number AS paid_day_number,
            as_of.business_day_number AS as_of_day_number
        FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS p
        JOIN {{ rebuilt(ref('int_instamojo__merchants')) }} AS m
            ON m.merchant = p.merchant
        LEFT JOIN {{ rebuilt(ref('int_instamojo__payment_orders')) }} AS po
            ON po.merchant = p.merchant AND po.payment_id = p.payment_id
        LEFT JOIN {{ rebuilt(ref('stg_instamojo__payouts')) }} AS payout
            ON payout.merchant = p.merchant AND payout.payout_id = p.payout_id
        LEFT JOIN {{ ref('settlement_calendar') }} AS cal
            ON cal.calendar_date = p.payment_date
        LEFT JOIN {{ ref('settlement_calendar') }} AS expected
            ON expected.calendar_date = cal.expected_payout_date
        LEFT JOIN {{ ref('settlement_calendar') }} AS paid
            ON paid.calendar_date = payout.paid_out_date
        LEFT JOIN {{ ref('settlement_calendar') }} AS as_of
            ON as_of.calendar_date = m.as_of_date
    )
    SELECT
        merchant,
        payment_id,
        order_id,
        payout_id,
        payout_found,
        status,
        currency,
        amount,
        fees,
        taxes,
        net_amount,
        created_at,
        payment_date,
        expected_payout_date,
        overdue_after_date,
        paid_out_at,
        paid_out_date,
        CASE
            WHEN status = 'failed' THEN 'failed'
            WHEN status = 'pending' THEN 'pending'
            -- the payment itself says it was paid out (Instamojo: `payout` is null until then)
            WHEN payout_id IS NOT NULL THEN 'settled'
            WHEN as_of_date > overdue_after_date THEN 'overdue'
            ELSE 'awaiting_payout'
        END AS settlement_state,
        CASE
            WHEN status <> 'successful' THEN NULL
            WHEN payout_id IS NOT NULL THEN paid_day_number - expected_day_number
            ELSE GREATEST(as_of_day_number - expected_day_number, 0)
        END AS business_days_late,
        as_of_date
    FROM joined
) AS final
{{ clustered_by_merchant() }}
