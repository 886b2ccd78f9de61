"""The dlt side of the warehouse: destinations, the engine's pipeline, the connections handed to
transforms, checks and analysts, and publishing the DuckDB file analysts read.

DuckDB lets one process write a file and no other process open it meanwhile, read-only included.
So with DuckDB the pipeline never shares its file: it loads and transforms into a private working
file (`Settings.duckdb_work_path`, under the pipelines folder) and, once the marts are built,
*publishes* a copy at `duckdb_path` (default `data/warehouse.duckdb`): checkpointed, copied to a
temporary file beside it, fsynced and renamed over the old one. An analyst's open connection
keeps reading the copy it opened (the renamed-over file lives on until it is closed) and is never
in the pipeline's way; a new connection sees the new copy. Postgres needs none of this.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.runtime.collector import NULL_COLLECTOR

from transforms.warehouse import Warehouse, WarehouseTarget

from .config import ConfigError, Settings

log = logging.getLogger(__name__)

# Schema (dataset) name the published copy is attached under in our own read-only connections,
# so that `instamojo.<table>` is never ambiguous, whatever the file is called (DuckDB names a
# file's catalog after the file, e.g. `instamojo.duckdb` → catalog `instamojo`).
ATTACH_ALIAS = "warehouse"


def destination_for(settings: Settings, *, for_loading: bool = True, pipeline_name: str | None = None) -> Destination:
    """The configured dlt destination (the pipeline's DuckDB working file, or Postgres).
    `for_loading`: cap DuckDB's memory (loads stream batches and need little). Each pipeline gets
    its own staging dataset: pipelines merging through one shared staging dataset destroy each
    other's pending rows (https://github.com/dlt-hub/dlt/issues/4297, #2287)."""
    # e.g. instamojo_raw_staging_sync for the pipeline instamojo__sync (a name dlt keeps as it is)
    suffix = pipeline_name.removeprefix("instamojo__").replace("__", "_") if pipeline_name else ""
    staging = {"staging_dataset_name_layout": f"%s_staging_{suffix}"} if suffix else {}
    if settings.destination == "postgres":
        credentials = _postgres_credentials(settings)
        return dlt.destinations.postgres(credentials=credentials, **staging)
    settings.duckdb_work_path.parent.mkdir(parents=True, exist_ok=True)
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(settings.duckdb_work_path))
    if for_loading:
        # DuckDB's buffer pool defaults to 80% of RAM and keeps what a load touched: capped, a
        # backfill's memory stays flat as history grows (a merge larger than this spills to disk).
        credentials.global_config = {"memory_limit": settings.duckdb_memory_limit}
    return dlt.destinations.duckdb(credentials=credentials, **staging)


def _postgres_credentials(settings: Settings) -> Any:
    """Postgres credentials for dlt. A DSN without a password (trust or peer authentication, a
    `.pgpass` file) is fine for libpq, but dlt's credentials insist on one: give it an empty one."""
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    dsn = postgres_dsn(settings)
    credentials = PostgresCredentials()
    credentials.parse_native_representation(dsn)
    if credentials.password is None:
        credentials.password = ""  # type: ignore[assignment]
    return credentials


def loader_file_format(settings: Settings) -> str:
    # The source yields Arrow tables: parquet loads them into DuckDB without a row-by-row
    # INSERT (measured ~30x faster than dlt's default insert_values); Postgres takes them by COPY
    # from csv.
    return "csv" if settings.destination == "postgres" else "parquet"


def engine_pipeline(settings: Settings, name: str | None = None, progress: Any = None) -> dlt.Pipeline:
    """The pipeline that loads many merchants into the raw dataset: its own state (every
    merchant's cursors) and its own staging dataset."""
    name = name or settings.pipeline_name
    adopt_earlier_warehouse(settings)
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(settings.pipelines_dir),
        destination=destination_for(settings, pipeline_name=name),
        dataset_name=settings.raw_dataset,
        progress=progress if progress is not None else NULL_COLLECTOR,
    )


def warehouse_pipeline(settings: Settings) -> dlt.Pipeline:
    """A pipeline used only for its destination connection (transforms and tests)."""
    return dlt.pipeline(
        pipeline_name="instamojo__warehouse",
        pipelines_dir=str(settings.pipelines_dir),
        destination=destination_for(settings, for_loading=False),
        dataset_name=settings.raw_dataset,
    )


@contextmanager
def open_warehouse(settings: Settings, *, published: bool = False) -> Iterator[Warehouse]:
    """A connection for SQL-only code (transforms, checks, the report).

    `published=False`: the pipeline's own destination connection (the DuckDB working file; only
    while holding the sync lock). `published=True`: what analysts see, read-only: for DuckDB the
    published copy (`analyst_connection`), for Postgres the database itself."""
    if published and settings.destination == "duckdb":
        warehouse = Warehouse(analyst_connection(settings.duckdb_path), "duckdb")
        try:
            yield warehouse
        finally:
            warehouse.close()
        return
    with warehouse_pipeline(settings).sql_client() as client:
        yield Warehouse(client.native_connection, "postgres" if settings.destination == "postgres" else "duckdb")


def analyst_connection(path: Path) -> Any:
    """A read-only DuckDB connection to a published warehouse that reads that file and nothing
    else: attached under a fixed name (`instamojo.<table>` resolves whatever the file is called),
    with DuckDB's external file access disabled and the configuration locked, so a query can
    neither read other files (the token store, say) nor write any (`COPY … TO`)."""
    import duckdb

    if not path.exists():
        raise ConfigError(f"no warehouse at {path} yet: run `make sync` (or `make demo`) first")
    connection = duckdb.connect(":memory:")
    try:
        connection.execute(f"ATTACH {_sql_text(str(path))} AS {ATTACH_ALIAS} (READ_ONLY)")
        connection.execute(f"USE {ATTACH_ALIAS}")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
    except Exception:
        connection.close()
        raise
    return connection


def _sql_text(value: str) -> str:
    """A SQL string literal (quotes doubled): the only way a path enters SQL text here."""
    return "'" + value.replace("'", "''") + "'"


def postgres_dsn(settings: Settings) -> str:
    """The Postgres destination's credentials as a libpq URI, however they are configured (a DSN
    string, or dlt's `[destination.postgres.credentials]` table, or environment variables)."""
    if settings.postgres_credentials:
        return settings.postgres_credentials
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigFieldMissingException
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    try:
        credentials = resolve_configuration(PostgresCredentials(), sections=("destination", "postgres"))
    except ConfigFieldMissingException as exc:
        raise ConfigError(
            "the Postgres destination needs its credentials: set destination.postgres.credentials = "
            "\"postgresql://user:password@host:5432/database\" in .dlt/secrets.toml, or the environment "
            f"variable DESTINATION__POSTGRES__CREDENTIALS (missing: {', '.join(exc.fields)})"
        ) from None
    return credentials.to_native_representation()


def warehouse_target(settings: Settings) -> WarehouseTarget:
    """Where transforms read the raw tables and build the marts, for clients that connect on
    their own (dbt): the pipeline's working file for DuckDB."""
    if settings.destination == "postgres":
        return WarehouseTarget("postgres", settings.raw_dataset, settings.marts_dataset,
                               postgres_dsn=postgres_dsn(settings))
    return WarehouseTarget("duckdb", settings.raw_dataset, settings.marts_dataset,
                           duckdb_path=settings.duckdb_work_path)


# -- the published copy (DuckDB) -----------------------------------------------------------------


@contextmanager
def published_snapshot(settings: Settings) -> Iterator[WarehouseTarget]:
    """What analysts see, for a reader that opens the database itself (dbt's tests, the checks):
    for DuckDB a private copy of the published file, named like the working file (so dbt's
    parsed project, which knows the database by the file's name, fits), removed afterwards;
    for Postgres the database itself."""
    if settings.destination != "duckdb":
        yield warehouse_target(settings)
        return
    if not settings.duckdb_path.exists():
        raise ConfigError(f"no warehouse at {settings.duckdb_path} yet: run `make sync` (or `make demo`) first")
    with tempfile.TemporaryDirectory(prefix="instamojo-check-") as tmp:
        copy = Path(tmp) / settings.duckdb_work_path.name
        shutil.copyfile(settings.duckdb_path, copy)
        yield WarehouseTarget("duckdb", settings.raw_dataset, settings.marts_dataset, duckdb_path=copy)

_PUBLISHED_MARK = "instamojo_elt_published"


def publish(settings: Settings) -> Path | None:
    """Replace the analysts' copy (`duckdb_path`) with the working file, atomically. Call with
    the sync lock held and no connection to the working file open. Returns the path published
    (None for Postgres, or when there is no working file yet)."""
    if settings.destination != "duckdb" or not settings.duckdb_work_path.exists():
        return None
    import duckdb

    work, target = settings.duckdb_work_path, settings.duckdb_path
    connection = duckdb.connect(str(work))
    try:
        connection.execute("CHECKPOINT")  # everything in the file itself, nothing left in its WAL
    finally:
        connection.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".publishing", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(work, "rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        # a WAL left beside the old copy (someone opened it read-write) must not be replayed
        # into the new one
        Path(str(target) + ".wal").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    _mark_published(settings)
    return target


def _mark_published(settings: Settings) -> None:
    (settings.pipelines_dir / _PUBLISHED_MARK).write_text(str(settings.duckdb_path) + "\n")


def adopt_earlier_warehouse(settings: Settings) -> None:
    """Upgrading: earlier versions loaded straight into `duckdb_path`. When there is no working
    file yet but that file exists and was never published by this version, it *is* the
    warehouse: it becomes the working file (copied; the original stays until the next publish)."""
    if settings.destination != "duckdb" or settings.duckdb_work_path.exists():
        return
    earlier = settings.duckdb_path
    if not earlier.exists() or (settings.pipelines_dir / _PUBLISHED_MARK).exists():
        return
    settings.duckdb_work_path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("adopting %s, written by an earlier version, as the pipeline's working file %s",
                earlier, settings.duckdb_work_path)
    shutil.copyfile(earlier, settings.duckdb_work_path)
    wal = Path(str(earlier) + ".wal")
    if wal.exists():
        shutil.copyfile(wal, str(settings.duckdb_work_path) + ".wal")
