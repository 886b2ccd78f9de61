-- Grain: one row per merchant and day in Asia/Kolkata (merchant, summary_date), every day from
-- the merchant's first payment or payout to its last one or its as-of date, active or not.
-- Money awaiting payout at a day's end = net of successful payments made up to that day whose
-- payout had not been paid out by then: inflow on the payment's date, outflow on its payout's
-- date, summed as a running total. A payment the API links to a payout that is not synced has no
-- known payout date and is left out of the running total (it is reported as orphan_payment, or
-- the merchant's payouts are not synced).
SELECT {{ typed_columns() }}
FROM (
    WITH spans AS (
        SELECT merchant, MIN(activity_date) AS first_date, MAX(activity_date) AS last_date
        FROM (
            SELECT merchant, payment_date AS activity_date
            FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
            WHERE payment_date IS NOT NULL
            UNION ALL
            SELECT merchant, paid_out_date
            FROM {{ rebuilt(ref('payout_reconciliation')) }} AS src
            WHERE paid_out_date IS NOT NULL
        ) AS activity
        GROUP BY merchant
    ),
    spine AS (
        SELECT s.merchant, c.calendar_date AS summary_date, c.is_business_day
        FROM spans AS s
        JOIN {{ rebuilt(ref('int_instamojo__merchants')) }} AS m
            ON m.merchant = s.merchant
        JOIN {{ ref('settlement_calendar') }} AS c
            ON c.calendar_date BETWEEN s.first_date AND GREATEST(s.last_date, m.as_of_date)
    ),
    sales AS (
        SELECT
            merchant,
            payment_date AS summary_date,
            COUNT(*) AS successful_payments_count,
            SUM(amount) AS gross_amount,
            SUM(fees) AS fees,
            SUM(taxes) AS taxes,
            SUM(net_amount) AS net_amount,
            SUM(net_amount) FILTER (WHERE payout_id IS NULL OR paid_out_date IS NOT NULL) AS awaiting_in
        FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
        WHERE status = 'successful' AND payment_date IS NOT NULL
        GROUP BY merchant, payment_date
    ),
    settled AS (
        SELECT merchant, paid_out_date AS summary_date, SUM(net_amount) AS awaiting_out
        FROM {{ rebuilt(ref('payments_reconciled')) }} AS src
        WHERE status = 'successful' AND paid_out_date IS NOT NULL AND payment_date IS NOT NULL
        GROUP BY merchant, paid_out_date
    ),
    payouts AS (
        SELECT
            merchant,
            paid_out_date AS summary_date,
            COUNT(*) AS payouts_count,
            SUM(paid_amount) AS paid_out_amount,
            COALESCE(SUM(held_amount), 0) - COALESCE(SUM(reversed_amount), 0) AS held_change
        FROM {{ rebuilt(ref('payout_reconciliation')) }} AS src
        WHERE paid_out_date IS NOT NULL
        GROUP BY merchant, paid_out_date
    ),
    daily AS (
        SELECT
            spine.merchant,
            spine.summary_date,
            spine.is_business_day,
            COALESCE(sales.successful_payments_count, 0) AS successful_payments_count,
            COALESCE(sales.gross_amount, 0) AS gross_amount,
            COALESCE(sales.fees, 0) AS fees,
            COALESCE(sales.taxes, 0) AS taxes,
            COALESCE(sales.net_amount, 0) AS net_amount,
            COALESCE(payouts.payouts_count, 0) AS payouts_count,
            COALESCE(payouts.paid_out_amount, 0) AS paid_out_amount,
            COALESCE(sales.awaiting_in, 0) - COALESCE(settled.awaiting_out, 0) AS awaiting_change,
            COALESCE(payouts.held_change, 0) AS held_change
        FROM spine
        LEFT JOIN sales
            ON sales.merchant = spine.merchant AND sales.summary_date = spine.summary_date
        LEFT JOIN settled
            ON settled.merchant = spine.merchant AND settled.summary_date = spine.summary_date
        LEFT JOIN payouts
            ON payouts.merchant = spine.merchant AND payouts.summary_date = spine.summary_date
    )
    SELECT
        merchant,
        summary_date,
        is_business_day,
        successful_payments_count,
        gross_amount,
        fees,
        taxes,
        net_amount,
        payouts_count,
        paid_out_amount,
        SUM(awaiting_change) OVER (
            PARTITION BY merchant ORDER BY summary_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS awaiting_payout_amount,
        SUM(held_change) OVER (
            PARTITION BY merchant ORDER BY summary_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS held_amount
    FROM daily
) AS final
{{ clustered_by_merchant() }}
