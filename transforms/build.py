"""`build_marts(warehouse, ...)`: build the marts with dbt on the database a `Warehouse` is open
on (for tests and tools holding a connection; the pipeline calls `transforms.dbt.build` with its
`WarehouseTarget`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transforms.dbt import BuildReport, build
from transforms.settings import DEFAULT_SETTINGS, ReconciliationSettings
from transforms.warehouse import Warehouse, check_identifier


def build_marts(
    warehouse: Warehouse,
    *,
    raw_schema: str = "instamojo_raw",
    marts_schema: str = "instamojo",
    settings: ReconciliationSettings = DEFAULT_SETTINGS,
    changed_merchants: Sequence[str] | None = None,
    full_refresh: bool = False,
    **options: Any,
) -> BuildReport:
    """Build the marts in `marts_schema` from the raw tables in `raw_schema` (see
    `transforms.dbt.build`). `warehouse` must be a DuckDB file or a Postgres DSN that dbt can
    open itself; it stays open (DuckDB shares one database between connections of a process)."""
    check_identifier("raw schema", raw_schema)
    check_identifier("marts schema", marts_schema)
    return build(warehouse.target(raw_schema, marts_schema), settings, changed_merchants=changed_merchants,
                 full_refresh=full_refresh, **options)
