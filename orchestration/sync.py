"""One shard's sync: the many-merchants engine (`pipelines.sync.sync_merchants`) over the shard's
merchants, under the shard's own pipeline name, with what running shards side by side needs.

- DuckDB: the sync lock `make sync` takes (one writer per file): shards, the marts and a cron
  sync wait for each other.
- Postgres: a lock per shard only (a shard never runs twice at once; other shards go ahead), and
  the first-load guard: dlt creates a dataset's tables and columns when a pipeline first loads a
  schema version, and two pipelines doing so at once race (`CREATE TABLE` / `ADD COLUMN` fails in
  one: https://github.com/dlt-hub/dlt/issues/4135, https://github.com/dlt-hub/dlt/issues/1711).
  So a load whose schema version the dataset does not hold yet takes a Postgres advisory lock for
  the length of its load; loads of a known version (every run after the first) never wait.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines.config import Settings
from pipelines.lock import SyncLock
from pipelines.sync import SyncRun, sync_merchants
from pipelines.warehouse import postgres_dsn

from .shards import OrchestrationSettings, merchants_of, pipeline_name, shard_settings

log = logging.getLogger(__name__)

# how long a DuckDB shard waits for the sync lock (another shard, the marts, a cron sync)
DUCKDB_LOCK_WAIT_SECONDS = 6 * 3600


@dataclass
class ShardRun:
    """What a shard's run did: its merchants and the engine's run (None: no merchant)."""

    key: str
    pipeline_name: str
    merchants: list[str]
    run: SyncRun | None

    @property
    def failed_merchants(self) -> list[str]:
        return [r.merchant for r in self.run.results if not r.ok] if self.run else []


def run_shard(settings: Settings, orchestration: OrchestrationSettings, key: str, *,
              lookback_days: float | None = None) -> ShardRun:
    """Sync the merchants of shard `key`; never raises for a merchant's own failure (see
    `ShardRun.failed_merchants` and each result's `.error`)."""
    merchants = merchants_of(key, settings.merchants)
    name = pipeline_name(key)
    if not merchants:
        return ShardRun(key, name, [], None)
    settings.require_credentials()
    shard = shard_settings(settings, orchestration, lookback_days)
    with _writer_lock(shard, name):
        run = sync_merchants(shard, merchants, pipeline_name=name, load_guard=first_load_guard(shard))
    return ShardRun(key, name, merchants, run)


def _writer_lock(settings: Settings, name: str) -> SyncLock:
    if settings.destination == "duckdb":
        return SyncLock(settings.lock_path, wait=DUCKDB_LOCK_WAIT_SECONDS,
                        waiting=lambda who: log.warning("waiting for the running sync (%s) to finish", who))
    return SyncLock(settings.pipelines_dir / f"{name}.lock")


def advisory_lock_key(dataset: str) -> int:
    """A signed 64-bit key for `pg_advisory_lock`, the same in every process for this dataset."""
    digest = hashlib.sha256(f"instamojo-elt:first-load:{dataset}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def first_load_guard(settings: Settings) -> Any:
    """The `load_guard` for `sync_merchants`: on Postgres, an advisory lock around a load that
    brings a schema version the dataset does not hold yet (its tables and columns are created or
    altered); otherwise nothing."""

    @contextmanager
    def guard(pipeline: Any) -> Iterator[None]:
        if settings.destination != "postgres":
            yield
            return
        import psycopg2

        connection = psycopg2.connect(postgres_dsn(settings))
        connection.autocommit = True
        try:
            version_hash = pipeline.default_schema.version_hash
            if _stored(connection, settings.raw_dataset, version_hash):
                yield
                return
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (advisory_lock_key(settings.raw_dataset),))
            try:
                yield
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (advisory_lock_key(settings.raw_dataset),))
        finally:
            connection.close()

    return guard


def _stored(connection: Any, dataset: str, version_hash: str) -> bool:
    """Whether the dataset already holds this schema version (so the load creates nothing)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (f'"{dataset}"."_dlt_version"',))
        if cursor.fetchone()[0] is None:
            return False
        cursor.execute(f'SELECT 1 FROM "{dataset}"."_dlt_version" WHERE version_hash = %s LIMIT 1', (version_hash,))
        return cursor.fetchone() is not None
