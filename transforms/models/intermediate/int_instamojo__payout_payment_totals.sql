-- Grain: one row per payout id that payments name (merchant, payout_id), whether or not that
-- payout is among the synced payouts. Sums cover successful payments only: a failed or pending
-- payment inside a payout is its own exception and must not also skew the payout's sums.
-- A sum with a term that is not a number is unknown (NULL), never a silently smaller number.
SELECT
    merchant,
    payout_id,
    COUNT(*) AS linked_payments_count,
    COUNT(*) FILTER (WHERE status <> 'successful') AS linked_unsuccessful_count,
    COUNT(*) FILTER (WHERE status = 'successful') AS linked_successful_count,
    CASE
        WHEN COUNT(*) FILTER (WHERE status = 'successful' AND amount IS NULL) > 0 THEN NULL
        ELSE COALESCE(SUM(amount) FILTER (WHERE status = 'successful'), CAST(0 AS DECIMAL(18,2)))
    END AS linked_amount,
    CASE
        WHEN COUNT(*) FILTER (WHERE status = 'successful' AND fees IS NULL) > 0 THEN NULL
        ELSE COALESCE(SUM(fees) FILTER (WHERE status = 'successful'), CAST(0 AS DECIMAL(18,2)))
    END AS linked_fees,
    CASE
        WHEN COUNT(*) FILTER (WHERE status = 'successful' AND taxes IS NULL) > 0 THEN NULL
        ELSE COALESCE(SUM(taxes) FILTER (WHERE status = 'successful'), CAST(0 AS DECIMAL(18,2)))
    END AS linked_taxes
FROM {{ rebuilt(ref('stg_instamojo__payments')) }} AS src
WHERE payout_id IS NOT NULL
GROUP BY merchant, payout_id
{{ clustered_by_merchant() }}
