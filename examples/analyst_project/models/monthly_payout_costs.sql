-- One row per merchant and month (Asia/Kolkata): what the merchant's payouts paid, what Instamojo
-- kept in fees and GST, and how many payouts did not balance. Money stays DECIMAL(18,2).
SELECT
    merchant,
    CAST(DATE_TRUNC('month', paid_out_date) AS DATE) AS payout_month,
    COUNT(*) AS payouts,
    CAST(SUM(paid_amount) AS DECIMAL(18,2)) AS paid_amount,
    CAST(SUM(sales_amount) AS DECIMAL(18,2)) AS sales_amount,
    CAST(SUM(fee_amount + total_tax_amount) AS DECIMAL(18,2)) AS fees_and_tax,
    COUNT(*) FILTER (WHERE status <> 'balanced') AS payouts_not_balanced
FROM {{ ref('payout_reconciliation') }}
WHERE paid_out_date IS NOT NULL
GROUP BY merchant, CAST(DATE_TRUNC('month', paid_out_date) AS DATE)
