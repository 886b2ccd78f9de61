-- Grain: one row per date. The business-day calendar the settlement rule uses, as the pipeline
-- computed it from the `holidays` package before this run (transforms/calendar.py: dbt-postgres
-- has no Python models, and SQL has no holiday calendar). The same for every merchant, so not
-- rebuilt by merchant: an incremental run appends the dates the table lacks (the span grows
-- with the years), and any change to the rules (holidays, business days) makes the pipeline's
-- run a full refresh (transforms/dbt.py), which rebuilds it whole. Rebuilding its few thousand
-- rows on every run instead cost 0.1-0.35 s of each incremental build.
{{ config(instamojo_by_merchant=false) }}
SELECT {{ typed_columns() }}
FROM {{ source('instamojo_transforms', 'settlement_calendar_days') }}
{% if is_incremental() -%}
WHERE calendar_date > (SELECT COALESCE(MAX(calendar_date), DATE '0001-01-01') FROM {{ this }})
{%- endif %}
