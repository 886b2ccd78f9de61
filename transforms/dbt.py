"""Run the dbt project in `transforms/` in-process against the pipeline's warehouse.

What dbt does not do, and this module does (nothing else):

- the connection: a profile generated from `WarehouseTarget` (which the pipeline derives from
  its dlt configuration) into a private temporary directory, so nobody writes a profiles.yml by
  hand; the Postgres password travels in a `DBT_ENV_SECRET_` environment variable for the length
  of the run (dbt scrubs those from its logs), never in a file;
- the settlement calendar: business days need the `holidays` package, and dbt-postgres has no
  Python models, so the calendar is computed here (transforms/calendar.py) and written to a table
  the model `settlement_calendar` reads;
- which merchants to rebuild: dbt knows nothing of syncs. The merchants the sync changed (or,
  when the caller does not know, those whose raw rows carry a `_synced_at` after the last
  successful build's high-water mark) are written to `transforms_rebuild_merchants` before the
  run; the models rebuild only those (macros/incremental.sql). A change of settings, calendar or
  SQL since the last build makes the run a full refresh, since unchanged merchants' rows would
  otherwise keep the old rules;
- the run summary: rows written and seconds per model, exceptions by type;
- the parsed project between processes: dbt's partial parse costs every new process 0.3-0.4 s,
  close to a tenth of an incremental build for a few merchants, so the manifest is also kept as
  a file of its own that loads in milliseconds (see `_save_parsed`).

No network: no `dbt deps` (the project has no packages), anonymous usage statistics off
(`send_anonymous_usage_stats: false`, `DBT_SEND_ANONYMOUS_USAGE_STATS`, `DO_NOT_TRACK`), no
version check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from transforms.settings import DEFAULT_SETTINGS, ReconciliationSettings
from transforms.warehouse import Warehouse, WarehouseTarget, check_identifier

PROJECT_DIR = Path(__file__).resolve().parent
PROFILE = "instamojo_reconciliation"
PACKAGE = "instamojo_reconciliation"
RAW_INPUTS = ("payments", "payouts", "orders", "order_payments")
REBUILD_TABLE = "transforms_rebuild_merchants"  # (merchant, raw_table): see macros/incremental.sql
CALENDAR_TABLE = "settlement_calendar_days"
CALENDAR_MART = "settlement_calendar"
STATE_TABLE = "transforms_build_state"
# The calendar covers a fixed span, so it is the same for every merchant and every run (a
# merchant's rows never depend on another's data): from before Instamojo's first payments to
# five years past the current one.
CALENDAR_FIRST = date(2010, 1, 1)
CALENDAR_YEARS_AHEAD = 5

for _name, _value in (("DBT_SEND_ANONYMOUS_USAGE_STATS", "False"), ("DO_NOT_TRACK", "1"),
                      ("DBT_VERSION_CHECK", "False"), ("DBT_USE_COLORS", "False")):
    os.environ.setdefault(_name, _value)

# dbt's in-process runner keeps global state (flags, adapters): one invocation at a time
_DBT_LOCK = threading.Lock()
# dbt threads of a build: two models at a time. An incremental build is mostly dbt's own Python
# work around small queries, which a second thread overlaps with the other's SQL: after 10 of
# 1,000 merchants changed (10 million payments) 4.3-4.8 s with one thread against 4.0-4.2 s with
# two, interleaved; the full build the same either way (37.5-45.2 against 37.7-42.1 s).
BUILD_THREADS = 2
# What changed: merchants whose every raw table may have changed, or merchant -> the raw tables
# its rows changed in (what a sync knows); see `note_changed`.
ChangedMerchants = Sequence[str] | Mapping[str, Collection[str]]
# One listed change: a merchant and the raw table its rows changed in (None: any or all of them).
_Change = tuple[str, str | None]
# Parsed projects, by what parsing bakes into them (database, schemas, the project's files):
# later invocations in the same process skip dbt's parse (seconds) and only compile and run.
_MANIFESTS: dict[tuple, Any] = {}


@dataclass(frozen=True)
class ModelRun:
    """One model of a build: its layer, the rows it wrote and how long it took."""

    name: str
    layer: str
    rows: int | None
    seconds: float


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for the run summary."""

    raw_schema: str
    marts_schema: str
    dialect: str
    full_refresh: bool
    rebuilt_merchants: tuple[str, ...] | None  # None: every merchant
    models: tuple[ModelRun, ...]
    seconds: float
    dbt_seconds: float
    exceptions_by_type: dict[str, int]
    exceptions_by_severity: dict[str, int]
    missing_raw_tables: tuple[str, ...] = ()
    reason: str = ""

    @property
    def mart_rows(self) -> dict[str, int]:
        """Rows each mart wrote in this build (all its rows after a full build)."""
        from transforms.marts import MARTS

        return {m.name: int(m.rows or 0) for m in self.models if m.name in MARTS}

    @property
    def exceptions_total(self) -> int:
        return sum(self.exceptions_by_type.values())

    def summary(self) -> str:
        return "\n".join(self.summary_lines())

    def summary_lines(self) -> list[str]:
        if self.rebuilt_merchants is None:
            scope = "every merchant"
        else:
            scope = f"{len(self.rebuilt_merchants)} merchant(s) rebuilt"
        lines = [
            f"transforms (dbt): {self.raw_schema} -> {self.marts_schema} on {self.dialect} in {self.seconds:.2f}s "
            f"(dbt {self.dbt_seconds:.2f}s; {'full refresh' if self.full_refresh else 'incremental'}, {scope}"
            + (f": {self.reason}" if self.reason else "") + ")"
        ]
        if self.missing_raw_tables:
            lines.append(f"  raw tables absent (read as empty): {', '.join(self.missing_raw_tables)}")
        for run in self.models:
            rows = "?" if run.rows is None else str(run.rows)
            lines.append(f"  {run.layer:<12} {run.name:<40} {rows:>10} rows written {run.seconds:>7.2f}s")
        if self.exceptions_by_type:
            by_type = ", ".join(f"{k}={v}" for k, v in sorted(self.exceptions_by_type.items()))
            lines.append(f"  exceptions: {self.exceptions_total} ({by_type})")
        else:
            lines.append("  exceptions: 0")
        return lines


class DbtFailed(RuntimeError):
    """dbt reported a failure; the message names the failing nodes."""


def staging_schema(target: WarehouseTarget) -> str:
    """The schema of the working tables (staging and intermediate layers, the calendar's input,
    the merchants to rebuild, the build's state): the marts schema + `_staging`."""
    return f"{target.marts_schema}_staging"


def dbt_vars(target: WarehouseTarget, settings: ReconciliationSettings) -> dict[str, Any]:
    """The project's vars for these settings and schemas."""
    as_of = settings.as_of
    return {
        "instamojo_raw_schema": target.raw_schema,
        "instamojo_marts_schema": target.marts_schema,
        "instamojo_staging_schema": staging_schema(target),
        "instamojo_payout_tolerance": f"{settings.payout_tolerance:f}",
        "instamojo_order_tolerance": f"{settings.order_tolerance:f}",
        "instamojo_as_of": as_of.astimezone(UTC).isoformat() if isinstance(as_of, datetime) else None,
        "instamojo_as_of_mode": as_of if isinstance(as_of, str) else "latest_sync",
    }


def profile_yaml(target: WarehouseTarget, *, threads: int = 1) -> tuple[str, dict[str, str]]:
    """profiles.yml for `target`, and the environment variables it reads (the Postgres password)."""
    env: dict[str, str] = {}
    if target.dialect == "duckdb":
        if target.duckdb_path is None:
            raise ValueError("a DuckDB target needs duckdb_path (dbt opens the file itself)")
        output: dict[str, Any] = {"type": "duckdb", "path": str(Path(target.duckdb_path).resolve()),
                                  "schema": target.marts_schema, "threads": threads}
    elif target.dialect == "postgres":
        if not target.postgres_dsn:
            raise ValueError("a Postgres target needs postgres_dsn")
        from psycopg2.extensions import parse_dsn

        params = parse_dsn(target.postgres_dsn)
        output = {"type": "postgres", "host": params.pop("host", "localhost"),
                  "port": int(params.pop("port", 5432)), "user": params.pop("user", "postgres"),
                  "dbname": params.pop("dbname", params.get("user", "postgres")),
                  "schema": target.marts_schema, "threads": threads}
        password = params.pop("password", None)
        if password:
            env["DBT_ENV_SECRET_INSTAMOJO_PG_PASSWORD"] = password
            output["password"] = "{{ env_var('DBT_ENV_SECRET_INSTAMOJO_PG_PASSWORD') }}"
        else:
            output["password"] = ""
        for key in ("sslmode", "sslcert", "sslkey", "sslrootcert", "connect_timeout", "application_name"):
            if key in params:
                value = params.pop(key)
                output[key] = int(value) if key == "connect_timeout" else value
        if params:
            raise ValueError(f"Postgres DSN options dbt cannot take: {sorted(params)}")
    else:
        raise ValueError(f"unsupported dialect {target.dialect!r}")
    return json.dumps({PROFILE: {"target": "pipeline", "outputs": {"pipeline": output}}}, indent=2), env


def open_target(target: WarehouseTarget) -> Warehouse:
    """A plain connection to `target` (for the steps before and after dbt)."""
    if target.dialect == "duckdb":
        return Warehouse.duckdb(str(target.duckdb_path))
    if target.postgres_dsn is None:
        raise ValueError(f"a {target.dialect} warehouse target needs a postgres_dsn")
    return Warehouse.postgres(target.postgres_dsn)


def project_fingerprint() -> str:
    """A hash of the project's SQL and YAML: a changed model means a full refresh."""
    digest = hashlib.sha256()
    for path in sorted(PROJECT_DIR.rglob("*")):
        if path.suffix in (".sql", ".yml") and "target" not in path.relative_to(PROJECT_DIR).parts:
            digest.update(str(path.relative_to(PROJECT_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def calendar_last_day(settings: ReconciliationSettings, today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    year = today.year
    if isinstance(settings.as_of, datetime):
        year = max(year, settings.as_of.year)
    return date(year + CALENDAR_YEARS_AHEAD, 12, 31)


def build(
    target: WarehouseTarget,
    settings: ReconciliationSettings = DEFAULT_SETTINGS,
    *,
    changed_merchants: ChangedMerchants | None = None,
    full_refresh: bool = False,
    work_dir: str | Path | None = None,
    threads: int = BUILD_THREADS,
    callbacks: Sequence[Callable[[Any], None]] = (),
    select: Sequence[str] | None = None,
) -> BuildReport:
    """Build the marts of `target` with dbt; returns what was built.

    `changed_merchants`: the merchants whose raw rows changed since the last build (the sync
    knows); only their rows are rebuilt in each model. A mapping merchant -> raw tables says
    where each one's rows changed, and a model then rebuilds a merchant only if it reads one of
    those tables (a list: every table may have changed). None: found, table by table, from the
    raw rows' `_synced_at` (after the last successful build's high-water mark). `full_refresh`:
    recreate every table from all raw rows (also chosen on the first build, and when the settings,
    the calendar or the SQL changed since the last build). `work_dir`: where dbt keeps its
    target/ (manifest, partial-parse cache) and logs; a temporary directory if None. `threads`:
    how many models dbt builds at a time (each in its own transaction).
    Raises `DbtFailed` if a model fails; the marts of models that did not run keep their rows.
    """
    check_identifier("raw schema", target.raw_schema)
    check_identifier("marts schema", target.marts_schema)
    if target.raw_schema == target.marts_schema:
        raise ValueError(f"raw and marts schema must differ (both {target.raw_schema!r})")
    if not isinstance(settings, ReconciliationSettings):
        raise TypeError(f"settings must be a ReconciliationSettings, got {type(settings).__name__}")
    started = time.perf_counter()
    plan = _prepare(target, settings, changed_merchants, full_refresh)
    dbt_started = time.perf_counter()
    if plan.skip:
        results: list[Any] = []
    else:
        args = ["run", "--vars", json.dumps(dbt_vars(target, settings))]
        if plan.full_refresh:
            args.append("--full-refresh")
        if select:
            args += ["--select", *select]
        results = invoke(target, args, work_dir=work_dir, threads=threads, callbacks=callbacks)
    dbt_seconds = time.perf_counter() - dbt_started
    by_type, by_severity, counted = _finish(target, plan, results)
    return BuildReport(
        raw_schema=target.raw_schema,
        marts_schema=target.marts_schema,
        dialect=target.dialect,
        full_refresh=plan.full_refresh,
        rebuilt_merchants=None if plan.full_refresh or plan.merchants is None else tuple(plan.merchants),
        models=tuple(_model_runs(results, counted)),
        seconds=time.perf_counter() - started,
        dbt_seconds=dbt_seconds,
        exceptions_by_type=by_type,
        exceptions_by_severity=by_severity,
        missing_raw_tables=plan.missing,
        reason=plan.reason,
    )


@dataclass(frozen=True)
class PreparedBuild:
    """A build made ready for a dbt run started elsewhere (an orchestrator's dbt subprocess):
    the calendar written, the merchants to rebuild listed. Run dbt with `args`, then call
    `finish_build` after it succeeded (a failed run leaves the merchants listed for the next)."""

    plan: Any
    args: tuple[str, ...]  # --vars and, when needed, --full-refresh

    @property
    def skip(self) -> bool:
        """Nothing to rebuild (no merchant changed, no settings or SQL changed)."""
        return bool(self.plan.skip)

    @property
    def full_refresh(self) -> bool:
        return bool(self.plan.full_refresh)

    @property
    def merchants(self) -> list[str] | None:
        return self.plan.merchants


def prepare_build(target: WarehouseTarget, settings: ReconciliationSettings = DEFAULT_SETTINGS, *,
                  changed_merchants: ChangedMerchants | None = None, full_refresh: bool = False) -> PreparedBuild:
    """What `build` does before dbt runs, for a caller that runs dbt itself (dagster-dbt)."""
    check_identifier("raw schema", target.raw_schema)
    check_identifier("marts schema", target.marts_schema)
    plan = _prepare(target, settings, changed_merchants, full_refresh)
    args = ["--vars", json.dumps(dbt_vars(target, settings))] + (["--full-refresh"] if plan.full_refresh else [])
    return PreparedBuild(plan, tuple(args))


def finish_build(target: WarehouseTarget, prepared: PreparedBuild) -> dict[str, int]:
    """What `build` does after a successful dbt run: record the build's state, clear the merchants
    it covered; returns the exceptions by type."""
    by_type, _, _ = _finish(target, prepared.plan, [])
    return by_type


def run_tests(target: WarehouseTarget, settings: ReconciliationSettings = DEFAULT_SETTINGS, *,
              work_dir: str | Path | None = None, select: Sequence[str] | None = None) -> list[DataTestResult]:
    """Run the project's data tests (the integrity queries: each must return zero rows)."""
    args = ["test", "--vars", json.dumps(dbt_vars(target, settings))]
    if select:
        args += ["--select", *select]
    results = invoke(target, args, work_dir=work_dir, raise_on_failure=False)
    return [DataTestResult(r.node.name, str(r.status), int(r.failures or 0), r.message or "") for r in results]


def compiled_tests(target: WarehouseTarget, settings: ReconciliationSettings = DEFAULT_SETTINGS, *,
                   work_dir: str | Path | None = None) -> dict[str, str]:
    """name → compiled SQL of every data test (each lists offending rows), for tools that run the
    queries themselves (tests that corrupt data inside a transaction they roll back)."""
    args = ["compile", "--vars", json.dumps(dbt_vars(target, settings)), "--select", "resource_type:test"]
    return {r.node.name: r.node.compiled_code for r in invoke(target, args, work_dir=work_dir)}


@dataclass(frozen=True)
class DataTestResult:
    """One dbt test: its name, dbt's status (pass, fail, error) and the offending rows counted."""

    name: str
    status: str
    failures: int
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "pass"


def invoke(target: WarehouseTarget, args: list[str], *, work_dir: str | Path | None = None, threads: int = 1,
           callbacks: Sequence[Callable[[Any], None]] = (), raise_on_failure: bool = True) -> list[Any]:
    """Run one dbt command in-process on `target`; returns dbt's node results."""
    from dbt.cli.main import dbtRunner
    from dbt.contracts.graph.manifest import Manifest

    profile, env = profile_yaml(target, threads=threads)
    with tempfile.TemporaryDirectory(prefix="instamojo-dbt-") as tmp, _environment(env), _DBT_LOCK:
        Path(tmp, "profiles.yml").write_text(profile)
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        common = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", tmp,
                  "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
                  "--threads", str(threads), "--log-level", "none", "--log-level-file", "warn",
                  "--no-send-anonymous-usage-stats", "--no-version-check", "--no-use-colors"]
        key = (_database_key(target), json.dumps(_schema_vars(args), sort_keys=True), project_fingerprint())
        manifest = _MANIFESTS.get(key) or _load_parsed(work, key)
        if manifest is None:
            parsed = dbtRunner().invoke(["parse", *_vars_args(args), *common])
            if not parsed.success or parsed.result is None:
                raise DbtFailed(f"dbt parse failed: {type(parsed.exception).__name__}: {parsed.exception}")
            if not isinstance(parsed.result, Manifest):
                raise DbtFailed(f"dbt parse returned a {type(parsed.result).__name__}, not a Manifest")
            _save_parsed(work, key, parsed.result)
            manifest = parsed.result
        _MANIFESTS[key] = manifest
        try:
            # a build's results come back as objects; writing manifest.json and run_results.json
            # after every run cost 0.2 s (dbt's serializers are generated in each new process)
            artifacts = ["--no-write-json"] if args[0] == "run" else []
            result = dbtRunner(manifest=manifest, callbacks=list(callbacks)).invoke([*args, *common, *artifacts])
        finally:
            if target.dialect == "duckdb":
                _release_duckdb()
    nodes = list(getattr(result.result, "results", None) or [])
    if raise_on_failure and not result.success:
        failed = [f"{r.node.name}: {r.message}" for r in nodes if str(r.status) in ("error", "fail")]
        detail = "; ".join(failed) if failed else f"{type(result.exception).__name__}: {result.exception}"
        raise DbtFailed(f"dbt {args[0]} failed: {detail}")
    if result.exception is not None:
        raise DbtFailed(f"dbt {args[0]} failed: {type(result.exception).__name__}: {result.exception}")
    return nodes


# The parsed project, kept in the work dir for the next process. dbt's own partial parse reads its
# msgpack file back in 0.3-0.4 s per process (its deserializers are generated at first use);
# a pickle of the same manifest loads in under 0.01 s, and a fresh process's incremental build
# is mostly fixed costs like this one (after 10 of 1,000 merchants changed: 4.2 s with dbt's
# partial parse, 3.9-4.0 s with the stored manifest). It is keyed by everything the in-process
# cache is (database, schema vars, the project's files) and by dbt's and the adapters' versions;
# anything else, a missing or unreadable file included, means dbt parses as before.
_PARSED_FILE = "instamojo_parsed_manifest.pickle"


def _parse_key(key: tuple) -> str:
    from importlib.metadata import version

    versions = [version(d) for d in ("dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-postgres")]
    return json.dumps([list(key), versions, str(PROJECT_DIR)])


def _load_parsed(work: Path, key: tuple) -> Any:
    """The manifest an earlier process parsed for the same key, or None."""
    import pickle

    from dbt.contracts.graph.manifest import Manifest

    try:
        # the pipeline's own file in its own work dir, written by _save_parsed
        stored_key, fields = pickle.loads((work / "target" / _PARSED_FILE).read_bytes())  # noqa: S301
        return Manifest(**fields) if stored_key == _parse_key(key) else None
    except Exception:  # noqa: BLE001  (missing, unreadable or from other code: dbt parses instead)
        return None


def _save_parsed(work: Path, key: tuple, manifest: Any) -> None:
    import pickle

    # The manifest's public fields, not the object: Manifest.__reduce_ex__ in dbt-core 1.11
    # leaves out `fixtures` and `_saved_query_lookup`, which shifts the lookups after them into
    # the wrong fields. The private fields are caches dbt rebuilds on first use.
    fields = {f.name: getattr(manifest, f.name) for f in dataclasses.fields(manifest)
              if f.init and not f.name.startswith("_")}
    path = work / "target" / _PARSED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(pickle.dumps((_parse_key(key), fields), protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(partial, path)  # whole or not at all, for a process reading it meanwhile


def _release_duckdb() -> None:
    """Close the DuckDB connection dbt-duckdb keeps open for the life of the process (its
    `close_all_connections` only forgets it): the file's lock is released as soon as the command
    is done, for the next process (another shard, the report, a test) and for a connection of
    another configuration in this one."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
        if env is not None:
            env.close()


def _database_key(target: WarehouseTarget) -> tuple:
    """What of the connection parsing bakes into the manifest: the adapter and database name
    (DuckDB names its catalog after the file)."""
    if target.dialect == "duckdb":
        return ("duckdb", Path(str(target.duckdb_path)).name.lstrip(".").split(".")[0])
    from psycopg2.extensions import parse_dsn

    params = parse_dsn(target.postgres_dsn or "")
    return ("postgres", params.get("host"), params.get("port"), params.get("dbname"))


def _vars_args(args: list[str]) -> list[str]:
    i = args.index("--vars") if "--vars" in args else -1
    return args[i : i + 2] if i >= 0 else []


def _schema_vars(args: list[str]) -> dict[str, Any]:
    """The vars parsing depends on (the schemas); the others are read when models compile."""
    given = json.loads(_vars_args(args)[1]) if _vars_args(args) else {}
    return {k: v for k, v in given.items() if k.endswith("_schema")}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rows_affected(result: Any) -> int | None:
    rows = (result.adapter_response or {}).get("rows_affected")
    return None if rows is None or rows < 0 else int(rows)


def _model_runs(results: list[Any], counted: dict[str, int]) -> Iterator[ModelRun]:
    for r in results:
        node = r.node
        layer = node.fqn[1] if len(node.fqn) > 2 else "models"
        rows = _rows_affected(r)
        yield ModelRun(node.name, layer, counted.get(node.name, rows), float(r.execution_time or 0.0))


# -- before and after dbt --------------------------------------------------------------------------


@dataclass
class _Plan:
    full_refresh: bool
    merchants: list[str] | None
    missing: tuple[str, ...]
    fingerprint: str
    watermark: str | None
    skip: bool = False
    reason: str = ""
    covered: list[_Change] = dataclasses.field(default_factory=list)  # what was listed when this build started
    calendar_rows: int = 0  # the calendar mart's rows before an incremental build (it only appends)


def note_changed(target: WarehouseTarget, merchants: ChangedMerchants) -> None:
    """Remember that these merchants' raw rows changed, for the next build to rebuild them: a
    sync calls it right after its load, so a run that skips the transforms (`--no-transform`), or
    whose build fails, loses nothing for the incremental build that follows. `merchants`: a list
    (every raw table may have changed), or merchant -> the raw tables its rows changed in (tables
    the marts do not read, such as products, need no rebuild)."""
    changes = _changes(merchants)
    if not changes:
        return
    work = staging_schema(target)
    check_identifier("staging schema", work)
    wh = open_target(target)
    try:
        wh.execute(f"CREATE SCHEMA IF NOT EXISTS {work}")
        with wh.transaction():
            _ensure_rebuild_table(wh, work)
            _list_changes(wh, work, changes)
    finally:
        wh.close()


def _changes(changed: ChangedMerchants) -> set[_Change]:
    """The (merchant, raw table) pairs to list for `changed` (see `ChangedMerchants`)."""
    if isinstance(changed, str):
        raise TypeError(f"changed merchants must be a list of names or a mapping, got the string {changed!r}")
    if isinstance(changed, Mapping):
        return {(m, t) for m, tables in changed.items() for t in tables if t in RAW_INPUTS}
    return {(m, None) for m in changed}


def _change_order(change: _Change) -> tuple[str, str]:
    return change[0], change[1] or ""


def _ensure_rebuild_table(wh: Warehouse, work: str) -> None:
    wh.execute(f"CREATE TABLE IF NOT EXISTS {work}.{REBUILD_TABLE} (merchant TEXT, raw_table TEXT)")
    if "raw_table" not in wh.columns_of(work, REBUILD_TABLE):
        # listed by an earlier version of the pipeline, merchants only: NULL, every table
        wh.execute(f"ALTER TABLE {work}.{REBUILD_TABLE} ADD COLUMN raw_table TEXT")


def _list_changes(wh: Warehouse, work: str, changes: set[_Change]) -> set[_Change]:
    """Add `changes` to those listed (inside the caller's transaction); returns all listed now."""
    listed = {(r[0], r[1]) for r in wh.query(f"SELECT merchant, raw_table FROM {work}.{REBUILD_TABLE}")[1]}
    new: list[_Change] = sorted(changes - listed, key=_change_order)
    wh.insert_many(f"{work}.{REBUILD_TABLE}", 2, new)
    return listed | changes


def _prepare(target: WarehouseTarget, settings: ReconciliationSettings, changed: ChangedMerchants | None,
             full_refresh: bool) -> _Plan:
    """Write the calendar, decide full or incremental, list the merchants to rebuild."""
    from transforms.marts import MARTS

    work = staging_schema(target)
    check_identifier("staging schema", work)
    last_day = calendar_last_day(settings)
    fingerprint = hashlib.sha256(json.dumps({
        "settings": repr(dataclasses.astuple(settings)), "calendar": [str(CALENDAR_FIRST), str(last_day)],
        "project": project_fingerprint(), "schemas": [target.raw_schema, target.marts_schema],
    }).encode()).hexdigest()
    wh = open_target(target)
    try:
        present = [t for t in RAW_INPUTS if wh.table_exists(target.raw_schema, t)]
        missing = tuple(sorted(set(RAW_INPUTS) - set(present)))
        wh.execute(f"CREATE SCHEMA IF NOT EXISTS {work}")
        wh.execute(f"CREATE TABLE IF NOT EXISTS {work}.{STATE_TABLE} (name TEXT, value TEXT)")
        state = dict(wh.query(f"SELECT name, value FROM {work}.{STATE_TABLE}")[1])
        marts_exist = all(wh.table_exists(target.marts_schema, m) for m in MARTS)
        if not wh.table_exists(work, CALENDAR_TABLE) or state.get("fingerprint") != fingerprint:
            _write_calendar(wh, work, settings, last_day)
        # rows synced after this moment are new to the next build
        watermark = _high_water_mark(wh, target.raw_schema, present)
        reason = ""
        if full_refresh:
            reason = "asked for"
        elif not marts_exist:
            reason = "marts missing"
            full_refresh = True
        elif state.get("fingerprint") != fingerprint:
            reason = "settings, calendar or models changed since the last build"
            full_refresh = True
        changes: set[_Change] = set()
        if not full_refresh:
            if changed is None:
                changes = _changed_since(wh, target.raw_schema, present, state.get("watermark"))
                reason = "changed merchants found by _synced_at"
            else:
                changes = _changes(changed)
                reason = "changed merchants given by the sync"
        with wh.transaction():
            # added to what is already listed: merchants of a failed earlier build, and those
            # syncs noted without building (`note_changed`), stay listed until a build covers them
            _ensure_rebuild_table(wh, work)
            wh.execute(f"DELETE FROM {work}.{REBUILD_TABLE} WHERE merchant IS NULL")
            covered = sorted(_list_changes(wh, work, changes), key=_change_order)
        merchants = None if full_refresh else sorted({m for m, _ in covered})
        calendar_rows = 0 if full_refresh else int(
            wh.query(f"SELECT COUNT(*) FROM {target.marts_schema}.{CALENDAR_MART}")[1][0][0])
        return _Plan(full_refresh, merchants, missing, fingerprint, watermark,
                     skip=not full_refresh and not merchants, reason=reason, covered=covered,
                     calendar_rows=calendar_rows)
    finally:
        wh.close()


def _finish(target: WarehouseTarget, plan: _Plan, results: list[Any]
            ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """After a successful run: record the state, clear the merchants to rebuild; count the rows
    written where dbt does not say (DuckDB) and the exceptions."""
    work = staging_schema(target)
    wh = open_target(target)
    try:
        counted = _count_written(wh, plan, [r.node for r in results if _rows_affected(r) is None
                                            and getattr(r.node, "relation_name", None)])
        with wh.transaction():
            wh.execute(f"DELETE FROM {work}.{STATE_TABLE}")
            ph = wh.placeholder
            wh.execute(f"INSERT INTO {work}.{STATE_TABLE} (name, value) VALUES ({ph}, {ph})", ("fingerprint", plan.fingerprint))
            if plan.watermark is not None:
                wh.execute(f"INSERT INTO {work}.{STATE_TABLE} (name, value) VALUES ({ph}, {ph})", ("watermark", plan.watermark))
            # only what this build covered: a merchant noted meanwhile (a sync of another shard
            # that committed after this build read the raw tables) stays listed for the next
            if plan.covered:
                wh.execute(f"DELETE FROM {work}.{REBUILD_TABLE} AS listed WHERE EXISTS (SELECT 1 FROM "
                           f"({_changes_values(ph, len(plan.covered))}) AS covered (merchant, raw_table) "
                           "WHERE covered.merchant = listed.merchant "
                           "AND covered.raw_table = COALESCE(listed.raw_table, ''))",
                           _changes_params(plan.covered))
        if target.dialect == "duckdb":
            # write everything into the database file itself (not only its WAL), so a copy of the
            # file taken now (the pipeline publishes one for analysts) holds the new marts
            wh.execute("CHECKPOINT")
        exceptions = f"{target.marts_schema}.reconciliation_exceptions"
        if not wh.table_exists(target.marts_schema, "reconciliation_exceptions"):
            return {}, {}, counted
        _, by_type = wh.query(f"SELECT exception_type, COUNT(*) FROM {exceptions} GROUP BY exception_type ORDER BY 1")
        _, by_severity = wh.query(f"SELECT severity, COUNT(*) FROM {exceptions} GROUP BY severity ORDER BY 1")
        return {k: int(v) for k, v in by_type}, {k: int(v) for k, v in by_severity}, counted
    finally:
        wh.close()


def _count_written(wh: Warehouse, plan: _Plan, nodes: Sequence[Any]) -> dict[str, int]:
    """Rows each model wrote, where dbt does not say (dbt-duckdb): after an incremental build the
    rows of the merchants it rebuilt in that model (the calendar: the dates it appended), after a
    full one all rows. One query for all the models."""
    if not nodes:
        return {}
    incremental = not plan.full_refresh and plan.merchants is not None
    covered = plan.covered if incremental else []
    listed = ""
    if covered:  # the listed changes once, however many models
        listed = f"WITH rebuilt (merchant, raw_table) AS ({_changes_values(wh.placeholder, len(covered))}) "
    by_id = {node.unique_id: node for node in nodes}
    parts: list[str] = []
    for node in nodes:
        where = ""
        if incremental and node.name != CALENDAR_MART:
            where = " WHERE 1 = 0"
            if covered:  # the merchants the model's own condition selected (macros/incremental.sql)
                tables = _upstream_raw_tables(node.unique_id, by_id)
                which = "" if tables is None else " WHERE raw_table = ''" + "".join(
                    f" OR raw_table = '{t}'" for t in sorted(tables))
                where = f" WHERE merchant IN (SELECT merchant FROM rebuilt{which})"
        parts.append(f"SELECT {len(parts)} AS i, COUNT(*) AS n FROM {node.relation_name}{where}")
    counts = dict(wh.query(listed + " UNION ALL ".join(parts), _changes_params(covered) or None)[1])
    written = {node.name: int(counts[i]) for i, node in enumerate(nodes)}
    if incremental and CALENDAR_MART in written:
        written[CALENDAR_MART] -= plan.calendar_rows
    return written


def _changes_values(placeholder: str, count: int) -> str:
    """VALUES of `count` (merchant, raw table) pairs, bound by `_changes_params`."""
    return "VALUES " + ", ".join([f"({placeholder}, {placeholder})"] * count)


def _changes_params(changes: Sequence[_Change]) -> tuple[str, ...]:
    """The pairs flattened for `_changes_values`; no table (every table) as ''."""
    return tuple(v for merchant, table in changes for v in (merchant, table or ""))


def _upstream_raw_tables(unique_id: str, nodes: Mapping[str, Any]) -> set[str] | None:
    """The raw tables a model reads from, directly or through the models in `nodes` (unique id ->
    node), as macros/incremental.sql finds them; None if it reads a model not among them."""
    found: set[str] = set()
    pending, seen = [unique_id], {unique_id}
    while pending:
        for parent in nodes[pending.pop()].depends_on.nodes:
            if parent in seen:
                continue
            seen.add(parent)
            kind, *_, source_name, table = parent.split(".")
            if kind == "source":
                if source_name == "instamojo":
                    found.add(table)
            elif parent in nodes:
                pending.append(parent)
            else:
                return None
    return found


def _high_water_mark(wh: Warehouse, raw: str, tables: Sequence[str]) -> str | None:
    if not tables:
        return None
    parts = " UNION ALL ".join(f"SELECT MAX(_synced_at) AS t FROM {raw}.{t}" for t in tables
                               if "_synced_at" in wh.columns_of(raw, t))
    if not parts:
        return None
    value = wh.query(f"SELECT MAX(t) FROM ({parts}) AS m")[1][0][0]
    return None if value is None else value.astimezone(UTC).isoformat()


def _changed_since(wh: Warehouse, raw: str, tables: Sequence[str], watermark: str | None) -> set[_Change]:
    """Merchants with raw rows synced after `watermark` (every merchant if None), with the raw
    tables those rows are in."""
    selects = []
    for t in tables:  # t: one of RAW_INPUTS
        if watermark is not None and "_synced_at" in wh.columns_of(raw, t):
            selects.append(f"SELECT DISTINCT merchant, '{t}' AS raw_table FROM {raw}.{t} "
                           f"WHERE _synced_at > CAST('{watermark}' AS TIMESTAMPTZ) OR _synced_at IS NULL")
        else:
            selects.append(f"SELECT DISTINCT merchant, '{t}' AS raw_table FROM {raw}.{t}")
    if not selects:
        return set()
    return {(r[0], r[1]) for r in wh.query(" UNION ".join(selects))[1] if r[0] is not None}


def _write_calendar(wh: Warehouse, schema: str, settings: ReconciliationSettings, last_day: date) -> None:
    """Replace the calendar's input table (in one transaction)."""
    from transforms.calendar import settlement_calendar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # holidays warns about years it has no data for
        days = settlement_calendar(CALENDAR_FIRST, last_day, settings)
    rows = [(d.calendar_date, d.is_business_day, d.holiday_name, d.business_day_number, d.expected_payout_date,
             d.overdue_after_date) for d in days]
    with wh.transaction():
        wh.execute(f"DROP TABLE IF EXISTS {schema}.{CALENDAR_TABLE}")
        wh.execute(f"CREATE TABLE {schema}.{CALENDAR_TABLE} (calendar_date DATE, is_business_day BOOLEAN, "
                   "holiday_name TEXT, business_day_number INTEGER, expected_payout_date DATE, overdue_after_date DATE)")
        wh.insert_many(f"{schema}.{CALENDAR_TABLE}", 6, rows)
