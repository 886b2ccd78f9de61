-- Grain: one row per date. The business-day calendar the settlement rule uses, as the pipeline
-- computed it from the `holidays` package before this run (transforms/calendar.py: dbt-postgres
-- has no Python models, and SQL has no holiday calendar). Rebuilt whole on every run (a few
-- thousand rows, the same for every merchant).
{{ config(materialized='table') }}
SELECT {{ typed_columns() }}
FROM {{ source('instamojo_transforms', 'settlement_calendar_days') }}
