"""The pipeline as a Dagster code location (docs/orchestration.md): the raw tables as assets
partitioned by merchant shard, the dbt marts downstream, the quality suites as asset checks,
schedules, and a pool capping the shards that run at once.

Only `orchestration.definitions` imports Dagster; `shards` and `sync` are plain Python over what
the pipeline package already exposes, so `make sync` never needs Dagster installed."""
