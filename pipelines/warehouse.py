"""The dlt side of the warehouse: destinations, per-merchant pipelines, and the destination
connection handed to transforms and checks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import dlt
from dlt.common.destination import Destination
from dlt.common.runtime.collector import NULL_COLLECTOR

from transforms.warehouse import Warehouse, WarehouseTarget

from .config import Settings


def destination_for(settings: Settings, *, for_loading: bool = True) -> Destination:
    """The configured dlt destination (DuckDB file by default, or Postgres). `for_loading`: cap
    DuckDB's memory (loads stream batches and need little; transforms get DuckDB's default)."""
    if settings.destination == "postgres":
        if settings.postgres_credentials:
            return dlt.destinations.postgres(credentials=settings.postgres_credentials)
        return dlt.destinations.postgres()  # dlt resolves destination.postgres.credentials itself
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(settings.duckdb_path))
    if for_loading:
        # DuckDB's buffer pool defaults to 80% of RAM and keeps what a load touched: capped, a
        # backfill's memory stays flat as history grows (a merge larger than this spills to disk).
        credentials.global_config = {"memory_limit": settings.duckdb_memory_limit}
    return dlt.destinations.duckdb(credentials=credentials)


def loader_file_format(settings: Settings) -> str:
    # The source yields Arrow tables: parquet loads them into DuckDB without a row-by-row
    # INSERT (measured ~30x faster than dlt's default insert_values); Postgres takes them by COPY
    # from csv.
    return "csv" if settings.destination == "postgres" else "parquet"


def merchant_pipeline(settings: Settings, merchant: str, progress: Any = None) -> dlt.Pipeline:
    """The dlt pipeline of one merchant: its own name, and so its own state and cursors, loading
    into the shared raw dataset."""
    return dlt.pipeline(
        pipeline_name=settings.pipeline_name(merchant),
        pipelines_dir=str(settings.pipelines_dir),
        destination=destination_for(settings),
        dataset_name=settings.raw_dataset,
        progress=progress if progress is not None else NULL_COLLECTOR,
    )


def warehouse_pipeline(settings: Settings) -> dlt.Pipeline:
    """A pipeline used only for its destination connection (transforms, checks, seeds)."""
    return dlt.pipeline(
        pipeline_name="instamojo_warehouse",
        pipelines_dir=str(settings.pipelines_dir),
        destination=destination_for(settings, for_loading=False),
        dataset_name=settings.raw_dataset,
    )


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[Warehouse]:
    """The pipeline's own destination connection, wrapped for SQL-only code (transforms, checks)."""
    with warehouse_pipeline(settings).sql_client() as client:
        yield Warehouse(client.native_connection, "postgres" if settings.destination == "postgres" else "duckdb")


def postgres_dsn(settings: Settings) -> str:
    """The Postgres destination's credentials as a libpq URI, however they are configured (a DSN
    string, or dlt's `[destination.postgres.credentials]` table, or environment variables)."""
    if settings.postgres_credentials:
        return settings.postgres_credentials
    from dlt.common.configuration import resolve_configuration
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = resolve_configuration(PostgresCredentials(), sections=("destination", "postgres"))
    return credentials.to_native_representation()


def warehouse_target(settings: Settings) -> WarehouseTarget:
    """Where transforms read the raw tables and build the marts, for clients that connect on
    their own (dbt)."""
    if settings.destination == "postgres":
        return WarehouseTarget("postgres", settings.raw_dataset, settings.marts_dataset,
                               postgres_dsn=postgres_dsn(settings))
    return WarehouseTarget("duckdb", settings.raw_dataset, settings.marts_dataset,
                           duckdb_path=settings.duckdb_path.resolve())
