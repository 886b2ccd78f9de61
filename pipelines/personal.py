"""Personal data already stored: `make rewrite-pii` (`python -m pipelines rewrite-pii`) applies
the current `[sources.instamojo.personal_data]` settings to the rows in the warehouse, in place,
without a re-download; `pii_retention_days` applies the retention to old records at the end of
each sync through the same code (docs/personal-data.md).

Per personal column: `drop` is an UPDATE to NULL; `pseudonymize` reads the column's distinct
values, computes their tokens in Python (the key never enters SQL), loads the mapping into a
temporary table and UPDATEs through a join. Tokens already stored (`h1:…`) are recognised and
never hashed again, so a rewrite is idempotent. The marts hold no personal field (they are built
from ids, amounts, statuses and times), so they need no rebuild. Afterwards the DuckDB file is
rewritten into a fresh file (the old values would otherwise stay in freed blocks) and published;
on Postgres the changed tables get a `VACUUM FULL`.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sources.instamojo.personal import PERSONAL_COLUMNS, PersonalDataPolicy, is_token
from transforms.warehouse import Warehouse

from .config import Settings
from .lock import SyncLock

log = logging.getLogger(__name__)

MAP_TABLE = "instamojo_pii_map"
# the record time retention is measured on; tables without one (the merchant's own profile) are
# not subject to it
RECORD_TIME = {"payments": "created_at", "orders": "created_at"}


def _tables(wh: Warehouse, settings: Settings) -> list[tuple[str, str]]:
    """(schema, table) of the personal tables in the raw dataset and dlt's staging datasets
    beside it (which keep the rows of the last load)."""
    ph = wh.placeholder
    _, rows = wh.query(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
        f"(table_schema = {ph} OR table_schema LIKE {ph}) ORDER BY 1, 2",
        (settings.raw_dataset, f"{settings.raw_dataset}_staging%"))
    return [(s, t) for s, t in rows if t in PERSONAL_COLUMNS]


def rewrite_stored(wh: Warehouse, settings: Settings, policy: PersonalDataPolicy, *,
                   older_than: datetime | None = None) -> dict[str, int]:
    """Apply `policy` to the stored personal columns (only to records created before
    `older_than`, if given). Returns schema.table.column → values changed. One transaction."""
    changed: dict[str, int] = {}
    ph = wh.placeholder
    with wh.transaction():
        for schema, table in _tables(wh, settings):
            present = wh.columns_of(schema, table)
            time_column = RECORD_TIME.get(table)
            if older_than is not None and time_column not in present:
                continue
            age = f" AND {time_column} < {ph}" if older_than is not None else ""
            params: tuple[Any, ...] = (older_than,) if older_than is not None else ()
            for column, (mode, kind) in policy.columns(table).items():
                if column not in present:
                    continue
                where = f"{column} IS NOT NULL{age}"
                if mode == "drop":
                    count = wh.query(f"SELECT COUNT(*) FROM {schema}.{table} WHERE {where}", params)[1][0][0]
                    if count:
                        wh.execute(f"UPDATE {schema}.{table} SET {column} = NULL WHERE {where}", params or None)
                else:
                    count = _pseudonymize_column(wh, f"{schema}.{table}", column, kind, policy, where, params)
                if count:
                    changed[f"{schema}.{table}.{column}"] = int(count)
    return changed


def _pseudonymize_column(wh: Warehouse, table: str, column: str, kind: Any, policy: PersonalDataPolicy,
                         where: str, params: tuple[Any, ...]) -> int:
    """Replace the column's plaintext values by their tokens through a temporary mapping table;
    returns how many rows changed."""
    _, rows = wh.query(f"SELECT DISTINCT {column} FROM {table} WHERE {where}", params or None)
    plain = [r[0] for r in rows if isinstance(r[0], str) and not is_token(r[0])]
    mapping = [(value, policy.token(value, kind)) for value in plain]
    mapping = [(value, token) for value, token in mapping if token != value]
    if not mapping:
        return 0
    wh.execute(f"DROP TABLE IF EXISTS {MAP_TABLE}")
    wh.execute(f"CREATE TEMPORARY TABLE {MAP_TABLE} (plain TEXT PRIMARY KEY, token TEXT)")
    wh.insert_many(MAP_TABLE, 2, mapping)
    chosen = f"{where} AND {column} IN (SELECT plain FROM {MAP_TABLE})"
    count = wh.query(f"SELECT COUNT(*) FROM {table} WHERE {chosen}", params or None)[1][0][0]
    wh.execute(f"UPDATE {table} SET {column} = (SELECT m.token FROM {MAP_TABLE} m WHERE m.plain = {column}) "
               f"WHERE {chosen}", params or None)
    wh.execute(f"DROP TABLE {MAP_TABLE}")
    return int(count)


def rewrite_personal_data(settings: Settings, *, older_than: datetime | None = None,
                          policy: PersonalDataPolicy | None = None, compact: bool = True) -> dict[str, int]:
    """Apply the settings (or `policy`) to what is stored; the sync lock must be held. After
    rows changed, no old value is left in the database file's bytes (see forget.py), unless
    `compact=False` (retention at the end of every sync: the values stay in freed blocks of the
    DuckDB file until DuckDB reuses them, or a forget or rewrite-pii compacts the file)."""
    from .forget import pipeline_warehouse, rewrite_duckdb_file
    from .warehouse import publish

    policy = policy or settings.personal.policy()
    if policy.keeps_everything:
        return {}
    wh = pipeline_warehouse(settings)
    if wh is None:
        return {}
    try:
        changed = rewrite_stored(wh, settings, policy, older_than=older_than)
        if changed and settings.destination == "postgres":
            for table in sorted({name.rsplit(".", 1)[0] for name in changed}):
                wh.execute(f"VACUUM FULL {table}")
    finally:
        wh.close()
    if changed and settings.destination == "duckdb" and compact:
        rewrite_duckdb_file(settings.duckdb_work_path)
        publish(settings)
    return changed


def apply_retention(settings: Settings) -> list[str]:
    """`pii_retention_days`: personal fields of payments and orders created longer ago than that
    are dropped (NULL), or pseudonymized when `pii_retention_action = "pseudonymize"`. Returns
    summary lines (none when retention is off or nothing was old enough)."""
    days = settings.personal.retention_days
    if days is None:
        return []
    action = settings.personal.retention_action
    groups = {g: action for g in ("buyer_contact", "buyer_identity")}
    policy = PersonalDataPolicy(groups, settings.personal.key if action == "pseudonymize" else None)
    cutoff = datetime.now(UTC) - timedelta(days=days)
    changed = rewrite_personal_data(settings, older_than=cutoff, policy=policy, compact=False)
    if not changed:
        return []
    done = "pseudonymized" if action == "pseudonymize" else "dropped"
    line = (f"Retention (pii_retention_days = {days:g}): personal fields of records created before "
            f"{cutoff:%Y-%m-%d} {done}: {sum(changed.values()):,} value(s)")
    return [line]


def rewrite_lines(changed: dict[str, int]) -> list[str]:
    """The summary of a rewrite."""
    if not changed:
        return ["Personal data: nothing to rewrite, the stored fields already follow the settings"]
    lines = ["Personal data: stored fields rewritten to the current settings:"]
    lines += [f"  {name:<56} {count:>9,} row(s)" for name, count in sorted(changed.items())]
    return lines


def cmd_rewrite_pii(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, settings_from_args
    from .sync import check_writable_folders

    settings = settings_from_args(args)
    policy = settings.personal.policy()  # a missing key: exit 2 before anything is touched
    check_writable_folders(settings)
    with SyncLock(settings.lock_path):
        changed = rewrite_personal_data(settings, policy=policy)
    print("\n".join(rewrite_lines(changed)))
    if changed:
        print("The marts hold no personal field: they are unchanged. Backups made before still hold the old values.")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add the `rewrite-pii` command to the CLI."""
    from .cli import add_destination_args

    p = sub.add_parser(
        "rewrite-pii", help="apply the personal-data settings to the rows already stored (no re-download)",
        description="Apply [sources.instamojo.personal_data] (keep / pseudonymize / drop per group) to the "
        "personal fields already in the warehouse, in place: tokens already stored are never hashed again; "
        "a token cannot be turned back into plaintext or re-keyed. See docs/personal-data.md.")
    add_destination_args(p)
    p.set_defaults(func=cmd_rewrite_pii)
