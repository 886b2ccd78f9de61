"""`make forget MERCHANT=acme` (`python -m pipelines forget acme`): erase one merchant completely
(docs/personal-data.md).

What goes, under the sync lock, in this order:

1. a *forgotten* mark in the token store, first, so that a forget cut short (a crash, Ctrl-C)
   still keeps the next sync from bringing the merchant back; running forget again finishes it;
2. in the warehouse (the DuckDB working file, or Postgres), in one transaction: the merchant's
   rows in every table of the raw dataset, dlt's staging datasets beside it, the marts and dbt's
   working schema (every base table with a `merchant` column: raw tables, marts, dbt's list of
   merchants to rebuild), and its part of every stored dlt state (`_dlt_pipeline_state`, each
   version of it, rewritten without `merchants.<name>`; the rows of an earlier version's
   per-merchant pipeline `instamojo_<name>` deleted);
3. its part of the local state of every engine pipeline (`instamojo__*`, saved through dlt's
   `managed_state`), an earlier version's pipeline folder for it (and its `.upgraded/` backup);
4. the kept copies of loaded packages (they hold every merchant of those runs) and dlt's trace;
   a package not loaded yet is loaded first, so no other merchant's data is lost;
5. its stored refresh token;
6. DuckDB: the working file rewritten into a fresh file (DuckDB leaves deleted values in the
   file's blocks, checkpointed or not), checked to hold none of the merchant's personal values,
   and re-published for analysts. Postgres: `VACUUM FULL` of the tables it was in.

The merchant's entry in `.dlt/secrets.toml` is the user's to remove; until then, and until it is
re-authorized (`make authorize`, or another token configured), a sync skips it with a notice.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sources.instamojo.names import MerchantNameError, check_merchant_name
from sources.instamojo.token_store import fingerprint
from transforms.warehouse import Warehouse

from .config import ConfigError, Settings
from .lock import SyncLock
from .upgrade import ENGINE_PREFIX, LEGACY_PREFIX, UPGRADED_DIR, WAREHOUSE_PIPELINE

log = logging.getLogger(__name__)

STATE_TABLE = "_dlt_pipeline_state"


@dataclass
class ForgetReport:
    """What a forget found (before erasing) or removed (after)."""

    merchant: str
    rows: dict[str, int] = field(default_factory=dict)  # schema.table → rows
    destination_states: int = 0  # stored pipeline-state versions holding the merchant
    local_states: list[str] = field(default_factory=list)  # pipelines whose local state held it
    legacy_folders: list[Path] = field(default_factory=list)
    token: bool = False
    packages: int = 0
    personal_values: set[str] = field(default_factory=set, repr=False)
    left_in_file: int = 0  # personal values still found in the DuckDB file's bytes afterwards
    done: bool = False  # False: nothing was erased (nothing found, or not confirmed)

    @property
    def anything(self) -> bool:
        return bool(sum(self.rows.values()) or self.destination_states or self.local_states
                    or self.legacy_folders or self.token)

    def lines(self, done: bool) -> list[str]:
        verb = "removed" if done else "to remove"
        lines = [f"{'Forgot' if done else 'Will forget'} merchant {self.merchant!r}:"]
        lines += [f"  {table:<52} {count:>9,} rows {verb}" for table, count in sorted(self.rows.items()) if count]
        lines.append(f"  dlt state: {self.destination_states} stored version(s) in the warehouse, local state of "
                     f"{', '.join(self.local_states) or 'no pipeline'}")
        if self.legacy_folders:
            lines.append(f"  earlier version's pipeline folders: {', '.join(map(str, self.legacy_folders))}")
        lines.append(f"  stored refresh token: {'yes' if self.token else 'none'}")
        lines.append(f"  kept copies of loaded packages (every merchant of those runs): {self.packages}")
        return lines


# -- what there is -------------------------------------------------------------------------------


def pipeline_warehouse(settings: Settings) -> Warehouse | None:
    """The pipeline's own warehouse (DuckDB working file, or Postgres); None if there is none yet."""
    if settings.destination == "postgres":
        from .warehouse import postgres_dsn

        return Warehouse.postgres(postgres_dsn(settings))
    if not settings.duckdb_work_path.exists():
        return None
    return Warehouse.duckdb(str(settings.duckdb_work_path))


def _schemas(settings: Settings) -> list[str]:
    """The schemas this project writes: raw, dlt's staging ones beside it, marts, dbt's working one."""
    return [settings.raw_dataset, settings.marts_dataset, f"{settings.marts_dataset}_staging"]


def merchant_tables(wh: Warehouse, settings: Settings) -> list[tuple[str, str]]:
    """(schema, table) of every base table with a `merchant` column in the project's schemas
    (the raw dataset's staging schemas are `<raw>_staging…`)."""
    ph = wh.placeholder
    raw = settings.raw_dataset
    _, rows = wh.query(
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        f"WHERE c.column_name = 'merchant' AND t.table_type = 'BASE TABLE' AND (c.table_schema IN ({ph}, {ph}, {ph}) "
        f"OR c.table_schema LIKE {ph}) ORDER BY 1, 2",
        (*_schemas(settings), f"{raw}_staging%"))
    return [(s, t) for s, t in rows]


def _state_rows(wh: Warehouse, settings: Settings) -> list[tuple[Any, str, str]]:
    """(_dlt_id, pipeline_name, state) of every stored pipeline state."""
    if not wh.table_exists(settings.raw_dataset, STATE_TABLE):
        return []
    _, rows = wh.query(f"SELECT _dlt_id, pipeline_name, state FROM {settings.raw_dataset}.{STATE_TABLE}")
    return rows


def _merchants_of(state: dict[str, Any]) -> dict[str, Any]:
    return ((state.get("sources") or {}).get("instamojo") or {}).get("merchants") or {}


def _engine_folders(settings: Settings) -> list[Path]:
    return [f for f in sorted(settings.pipelines_dir.glob(f"{ENGINE_PREFIX}*"))
            if f.name != WAREHOUSE_PIPELINE and (f / "state.json").is_file()]


def _local_pipeline(settings: Settings, name: str) -> Any:
    import dlt
    from dlt.common.runtime.collector import NULL_COLLECTOR

    return dlt.pipeline(pipeline_name=name, pipelines_dir=str(settings.pipelines_dir), progress=NULL_COLLECTOR)


def _packages(settings: Settings) -> list[Path]:
    found = []
    for folder in _engine_folders(settings):
        loaded = folder / "load" / "loaded"
        found += [p for p in loaded.iterdir() if p.is_dir()] if loaded.is_dir() else []
    return found


def _legacy_folders(settings: Settings, merchant: str) -> list[Path]:
    name = f"{LEGACY_PREFIX}{merchant}"
    return [f for f in (settings.pipelines_dir / name, settings.pipelines_dir / UPGRADED_DIR / name) if f.exists()]


def inventory(settings: Settings, merchant: str) -> ForgetReport:
    """What of `merchant` there is, everywhere forget looks."""
    from dlt.common.versioned_state import decompress_state

    report = ForgetReport(merchant)
    wh = pipeline_warehouse(settings)
    if wh is not None:
        try:
            ph = wh.placeholder
            for schema, table in merchant_tables(wh, settings):
                count = wh.query(f"SELECT COUNT(*) FROM {schema}.{table} WHERE merchant = {ph}", (merchant,))[1][0][0]
                if count:
                    report.rows[f"{schema}.{table}"] = int(count)
            for _, pipeline, state in _state_rows(wh, settings):
                if pipeline == f"{LEGACY_PREFIX}{merchant}" or merchant in _merchants_of(decompress_state(state)):
                    report.destination_states += 1
            report.personal_values = _personal_values(wh, settings, merchant)
        finally:
            wh.close()
    for folder in _engine_folders(settings):
        if merchant in _merchants_of(_local_pipeline(settings, folder.name).state):
            report.local_states.append(folder.name)
    report.legacy_folders = _legacy_folders(settings, merchant)
    report.token = settings.token_store.get(merchant) is not None
    report.packages = len(_packages(settings))
    return report


def _personal_values(wh: Warehouse, settings: Settings, merchant: str) -> set[str]:
    """The emails and phone numbers of the merchant's buyers (and its own) as stored, plaintext
    or tokens, that no other merchant's rows hold: what must be gone from the DuckDB file's bytes
    once it is rewritten."""
    from sources.instamojo.personal import PERSONAL_COLUMNS

    found: set[str] = set()
    raw, ph = settings.raw_dataset, wh.placeholder
    for table, columns in PERSONAL_COLUMNS.items():
        present = wh.columns_of(raw, table)
        for column in (c for c, (_, kind) in columns.items() if kind != "text" and c in present):
            _, rows = wh.query(f"SELECT DISTINCT {column} FROM {raw}.{table} WHERE merchant = {ph} AND {column} "
                               f"IS NOT NULL EXCEPT SELECT {column} FROM {raw}.{table} WHERE merchant <> {ph}",
                               (merchant, merchant))
            found |= {r[0] for r in rows if isinstance(r[0], str) and len(r[0]) >= 8}
    return found


# -- erasing -------------------------------------------------------------------------------------


def finish_pending_loads(settings: Settings) -> list[str]:
    """Load what earlier runs extracted and did not load yet (it holds other merchants' rows too),
    so that nothing of this merchant lands after the forget and nothing of the others is lost."""
    from .warehouse import engine_pipeline

    finished = []
    for folder in _engine_folders(settings):
        pipeline = engine_pipeline(settings, folder.name)
        if pipeline.has_pending_data:
            log.warning("loading what an earlier run of %s left unfinished, before forgetting", folder.name)
            pipeline.normalize()
            pipeline.load()
            finished.append(folder.name)
    return finished


def erase_in_warehouse(settings: Settings, merchant: str) -> dict[str, int]:
    """Delete the merchant's rows and its part of every stored dlt state, in one transaction.
    Returns schema.table → rows deleted."""
    from dlt.common.versioned_state import compress_state, decompress_state

    wh = pipeline_warehouse(settings)
    if wh is None:
        return {}
    removed: dict[str, int] = {}
    try:
        ph = wh.placeholder
        tables = merchant_tables(wh, settings)
        states = _state_rows(wh, settings)
        with wh.transaction():
            for schema, table in tables:
                count = wh.query(f"SELECT COUNT(*) FROM {schema}.{table} WHERE merchant = {ph}", (merchant,))[1][0][0]
                if count:
                    wh.execute(f"DELETE FROM {schema}.{table} WHERE merchant = {ph}", (merchant,))
                    removed[f"{schema}.{table}"] = int(count)
            target = f"{settings.raw_dataset}.{STATE_TABLE}"
            for dlt_id, pipeline, blob in states:
                if pipeline == f"{LEGACY_PREFIX}{merchant}":
                    wh.execute(f"DELETE FROM {target} WHERE _dlt_id = {ph}", (dlt_id,))
                    continue
                state = decompress_state(blob)
                merchants = _merchants_of(state)
                if merchant in merchants:
                    del merchants[merchant]
                    # the version stays: a newer local state (saved below) still wins, and a
                    # restore from here (an empty pipelines folder) finds no trace of the merchant
                    wh.execute(f"UPDATE {target} SET state = {ph} WHERE _dlt_id = {ph}",
                               (compress_state(state), dlt_id))  # type: ignore[arg-type]
        if settings.destination == "postgres":
            for table in removed:
                wh.execute(f"VACUUM FULL {table}")  # the deleted tuples' bytes, rewritten away
    finally:
        wh.close()
    return removed


def erase_local(settings: Settings, merchant: str) -> None:
    """The merchant's part of every engine pipeline's local state, an earlier version's pipeline
    folder for it, the kept copies of loaded packages and dlt's traces."""
    for folder in _engine_folders(settings):
        pipeline = _local_pipeline(settings, folder.name)
        if merchant in _merchants_of(pipeline.state):
            with pipeline.managed_state() as state:
                del _merchants_of(state)[merchant]
        (folder / "trace.pickle").unlink(missing_ok=True)
    for package in _packages(settings):
        shutil.rmtree(package, ignore_errors=True)
    for legacy in _legacy_folders(settings, merchant):
        shutil.rmtree(legacy)


def rewrite_duckdb_file(path: Path) -> None:
    """Copy the database into a fresh file and put it in place atomically: DuckDB keeps deleted
    values in the file's blocks (a CHECKPOINT marks them free, it does not overwrite them)."""
    import duckdb

    fresh = path.with_name(f".{path.name}.rewriting")
    fresh.unlink(missing_ok=True)
    Path(str(fresh) + ".wal").unlink(missing_ok=True)
    connection = duckdb.connect(":memory:")
    try:
        connection.execute(f"ATTACH {_literal(str(path))} AS old_db")
        connection.execute("USE old_db")
        connection.execute("CHECKPOINT old_db")
        connection.execute(f"ATTACH {_literal(str(fresh))} AS new_db")
        connection.execute("COPY FROM DATABASE old_db TO new_db")
        connection.execute("CHECKPOINT new_db")
        connection.execute("USE memory")
        connection.execute("DETACH new_db")
        connection.execute("DETACH old_db")
    finally:
        connection.close()
    with open(fresh, "rb+") as fh:
        os.fsync(fh.fileno())
    Path(str(path) + ".wal").unlink(missing_ok=True)
    os.replace(fresh, path)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def values_in_file(path: Path, values: set[str]) -> int:
    """How many of `values` are found in the bytes of `path`."""
    if not values or not path.exists():
        return 0
    data = path.read_bytes()
    return sum(1 for v in values if v.encode() in data)


def forget_merchant(settings: Settings, merchant: str, *, confirm: Callable[[ForgetReport], bool] | None = None
                    ) -> ForgetReport:
    """Erase `merchant` (see the module docstring); the sync lock must be held. Returns what was
    found and, with `done`, whether it was removed (not when there was nothing, or `confirm`
    said no)."""
    from .warehouse import publish

    finish_pending_loads(settings)
    found = inventory(settings, merchant)
    if not found.anything or (confirm is not None and not confirm(found)):
        return found
    settings.token_store.mark_forgotten(merchant, _configured_fingerprint(settings, merchant))
    found.rows = erase_in_warehouse(settings, merchant)
    erase_local(settings, merchant)
    settings.token_store.remove(merchant)
    settings.token_store.clear_refused(merchant)
    if settings.destination == "duckdb" and settings.duckdb_work_path.exists():
        rewrite_duckdb_file(settings.duckdb_work_path)
        found.left_in_file = values_in_file(settings.duckdb_work_path, found.personal_values)
        publish(settings)
    found.done = True
    return found


def _configured_fingerprint(settings: Settings, merchant: str) -> str | None:
    token = settings.refresh_tokens.get(merchant)
    return fingerprint(token) if token else None


# -- the command ---------------------------------------------------------------------------------


def cmd_forget(args: argparse.Namespace) -> int:
    from .cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, settings_from_args

    try:
        check_merchant_name(args.merchant, "the merchant to forget")
    except MerchantNameError as exc:
        raise ConfigError(str(exc)) from None
    if not args.yes and not sys.stdin.isatty():
        print("error: forget erases a merchant's data for good: confirm on a terminal, or pass --yes",
              file=sys.stderr)
        return EXIT_CONFIG
    settings = settings_from_args(args)
    from .sync import check_writable_folders

    check_writable_folders(settings)

    def ask(found: ForgetReport) -> bool:
        if args.yes:
            return True
        print("\n".join(found.lines(done=False)))
        answer = input(f"This cannot be undone. Type the merchant's name ({args.merchant}) to forget it: ")
        return answer.strip() == args.merchant

    with SyncLock(settings.lock_path):
        result = forget_merchant(settings, args.merchant, confirm=ask)
        if result.anything and not result.done:
            print(f"not confirmed: nothing of {args.merchant!r} was erased")
            return EXIT_FAILED
        if not result.done:
            forgotten = settings.token_store.forgotten(args.merchant, settings.refresh_tokens.get(args.merchant))
            if forgotten is None and args.merchant in settings.merchants:
                # nothing stored yet, but configured: still keep the next sync from bringing it in
                settings.token_store.mark_forgotten(args.merchant, _configured_fingerprint(settings, args.merchant))
    if not result.done:
        print(f"nothing to forget for merchant {args.merchant!r}: no rows, state or token of it are stored")
        return EXIT_OK
    lines = result.lines(done=True)
    if settings.destination == "duckdb":
        lines.append(f"  DuckDB file rewritten into a fresh file and re-published; its buyers' emails and phone "
                     f"numbers left in the file's bytes: {result.left_in_file} of {len(result.personal_values)}")
    lines.append(f"The next sync skips {args.merchant!r} until it is re-authorized (`make authorize "
                 f"MERCHANT={args.merchant}`); remove it from .dlt/secrets.toml if it is listed there. Backups "
                 "and copies made outside this tool still hold its data (docs/personal-data.md).")
    print("\n".join(lines))
    return EXIT_OK if result.left_in_file == 0 else EXIT_FAILED


def register(sub: Any) -> None:
    """Add the `forget` command to the CLI."""
    from .cli import add_destination_args

    p = sub.add_parser(
        "forget", help="erase one merchant completely: its rows, marts, state, load packages and token",
        description="Erase one merchant: its rows in every raw table and mart, its dlt state and cursors, the "
        "kept load packages, its stored refresh token (in the DuckDB working file and the analysts' copy, or "
        "in Postgres). Asks for confirmation unless --yes; idempotent. The next sync skips the merchant until "
        "it is re-authorized with `make authorize`. See docs/personal-data.md.")
    p.add_argument("merchant", help="the merchant's name (as in `make merchants`)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    add_destination_args(p)
    p.set_defaults(func=cmd_forget)
