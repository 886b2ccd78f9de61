"""Helpers for tests that run the real pipeline against a sandbox: settings that point at the
sandbox with merchants authorized through its real OAuth endpoints, syncing, and reading back
what landed. Used by the source, transforms and checks tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instamojo_sandbox import Sandbox
from instamojo_sandbox.config import DEMO_APP
from pipelines.config import Settings, SourceOptions
from pipelines.sync import MerchantResult, sync_merchants
from tests.oauth_flow import obtain_tokens
from transforms.warehouse import Warehouse

# trust auth ignores the password, but dlt requires one in its credentials
POSTGRES_DSN = "postgresql://postgres:postgres@127.0.0.1:5432/test"


def pipeline_settings(
    sandbox: Sandbox,
    tmp_path: Path,
    *,
    destination: str = "duckdb",
    merchants: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    **source_options: Any,
) -> Settings:
    """Settings for syncing `sandbox` into a fresh warehouse under `tmp_path` (DuckDB) or into
    uniquely named schemas of the test Postgres database. Each merchant's refresh token comes from
    the sandbox's real consent page and token endpoint, as a browser would get it."""
    merchants = list(merchants or sandbox.merchants)
    tokens = {m: obtain_tokens(sandbox, m, scopes=scopes)["refresh_token"] for m in merchants}
    suffix = uuid.uuid4().hex[:8]
    postgres = destination == "postgres"
    # ask for the sandbox's own page size (it honours `limit`), so a small page size still makes
    # every listing span several pages
    source_options.setdefault("page_size", sandbox.config.page_size)
    return Settings(
        base_url=sandbox.base_url,
        client_id=DEMO_APP.client_id,
        client_secret=DEMO_APP.client_secret,
        merchants=tuple(merchants),
        refresh_tokens=tokens,
        token_store_path=tmp_path / "tokens.json",
        destination=destination,
        duckdb_path=tmp_path / "warehouse.duckdb",
        postgres_credentials=POSTGRES_DSN if postgres else None,
        raw_dataset=f"t{suffix}_raw" if postgres else "instamojo_raw",
        marts_dataset=f"t{suffix}_marts" if postgres else "instamojo",
        pipelines_dir=tmp_path / "pipelines",
        source=SourceOptions(**source_options),
    )


def sync_all(settings: Settings, **kwargs: Any) -> list[MerchantResult]:
    """Sync every merchant of `settings` in one run; returns the results (does not assert success)."""
    return sync_merchants(settings, **kwargs).results


def open_test_warehouse(settings: Settings) -> Warehouse:
    """A plain connection to the warehouse `settings` loads into (not dlt's): for DuckDB the
    pipeline's working file."""
    if settings.destination == "postgres":
        return Warehouse.postgres(settings.postgres_credentials)
    return Warehouse.duckdb(str(settings.duckdb_work_path))


def drop_postgres_schemas(settings: Settings) -> None:
    """Remove the schemas a Postgres test created."""
    if settings.destination != "postgres":
        return
    wh = Warehouse.postgres(settings.postgres_credentials)
    try:
        # the raw dataset's staging schemas (one per pipeline) and dbt's working schema beside the marts
        _, rows = wh.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s "
                           "OR schema_name LIKE %s", (f"{settings.raw_dataset}%", f"{settings.marts_dataset}%"))
        for schema in {settings.raw_dataset, settings.marts_dataset, *(r[0] for r in rows)}:
            wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        wh.close()


def sync_and_build_marts(sandbox: Sandbox, tmp_path: Path, destination: str = "duckdb") -> tuple[Settings, Warehouse, Any]:
    """Sync every merchant of `sandbox` with the real pipeline, then build the marts as of the
    sandbox's clock and publish the analysts' copy; returns (settings, an open connection to the
    pipeline's working warehouse, the build report). Fails the test if a merchant's sync failed."""
    import pytest

    from transforms import ReconciliationSettings, build_marts

    settings = pipeline_settings(sandbox, tmp_path, destination=destination)
    results = sync_all(settings)
    if not all(r.ok for r in results):
        drop_postgres_schemas(settings)
        pytest.fail(f"the sync failed: {results}")
    warehouse = open_test_warehouse(settings)
    report = build_marts(warehouse, raw_schema=settings.raw_dataset, marts_schema=settings.marts_dataset,
                         settings=ReconciliationSettings(as_of=sandbox.now))
    from pipelines.warehouse import publish

    publish(settings)  # what analysts (and the report) read: the published copy at settings.duckdb_path
    return settings, warehouse, report
