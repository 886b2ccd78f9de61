-- Must return zero rows: no payment is counted in two payouts.
-- Per payment: one payout at most. Per merchant: the payouts' linked-payment counts add up to
-- exactly the payments linked to a synced payout (a payment counted twice would add one more).
SELECT merchant, payment_id AS entity_id, 'payment linked to more than one payout' AS problem
FROM {{ ref('payments_reconciled') }}
GROUP BY merchant, payment_id
HAVING COUNT(DISTINCT payout_id) > 1
UNION ALL
SELECT
    COALESCE(counted.merchant, linked.merchant),
    CAST(NULL AS TEXT),
    'payouts count ' || CAST(COALESCE(counted.n, 0) AS TEXT) || ' linked payments, payments link '
        || CAST(COALESCE(linked.n, 0) AS TEXT)
FROM (
    SELECT merchant, SUM(linked_payments_count) AS n
    FROM {{ ref('payout_reconciliation') }}
    GROUP BY merchant
) AS counted
FULL OUTER JOIN (
    SELECT merchant, COUNT(*) AS n
    FROM {{ ref('payments_reconciled') }}
    WHERE payout_found IS TRUE
    GROUP BY merchant
) AS linked
    ON linked.merchant = counted.merchant
WHERE COALESCE(counted.n, 0) <> COALESCE(linked.n, 0)
