"""Build the reconciliation marts: run the models in dependency order, then publish atomically.

How a build runs, all inside one transaction (`Warehouse.transaction()`):

1. every model (staging → intermediate → marts, found under `transforms/models/`, ordered by
   their `{{ ref() }}`s) is computed into a temporary table of this connection;
2. each mart table is replaced in the marts schema: DROP, CREATE from its declaration in
   `transforms.marts` (exact column types: DECIMAL(18,2) money on both databases), INSERT from
   the temporary table, COMMENTs from the declaration;
3. the temporary tables are dropped and the transaction commits.

Both DuckDB and Postgres have transactional DDL, so a reader on another connection sees either
the previous marts or the new ones, never a mix. Step 1 does the heavy work before any mart is
touched, so on Postgres (where DROP TABLE takes an exclusive lock until commit) readers wait only
for the copy in step 2, and then read the new tables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from transforms.calendar import settlement_calendar
from transforms.marts import MARTS, Mart
from transforms.settings import SETTLEMENT_TIMEZONE, ReconciliationSettings
from transforms.templating import (
    RawTableShape,
    check_identifier,
    refs_of,
    render,
    source_sql,
    sources_of,
    temp_name,
)
from transforms.warehouse import Warehouse

MODELS_DIR = Path(__file__).parent / "models"
LAYERS = ("staging", "intermediate", "marts")

# rows per INSERT when writing the Python-generated calendar
_CALENDAR_BATCH = 500


@dataclass(frozen=True)
class ModelRun:
    """One model of a build: its layer, the rows it produced and how long it took."""

    name: str
    layer: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class BuildReport:
    """What `build_marts` did, for the run summary."""

    raw_schema: str
    marts_schema: str
    dialect: str
    models: tuple[ModelRun, ...]
    publish_seconds: float
    seconds: float
    exceptions_by_type: dict[str, int]
    exceptions_by_severity: dict[str, int]
    missing_raw_tables: tuple[str, ...] = ()

    @property
    def mart_rows(self) -> dict[str, int]:
        """Rows of each published mart."""
        return {m.name: m.rows for m in self.models if m.name in MARTS}

    @property
    def exceptions_total(self) -> int:
        return sum(self.exceptions_by_type.values())

    def summary(self) -> str:
        """The run-summary block as one string (see `summary_lines`)."""
        return "\n".join(self.summary_lines())

    def summary_lines(self) -> list[str]:
        """Human-readable lines for the pipeline's run summary."""
        lines = [
            f"transforms: {self.raw_schema} -> {self.marts_schema} on {self.dialect} in {self.seconds:.2f}s "
            f"(publish {self.publish_seconds:.2f}s)"
        ]
        if self.missing_raw_tables:
            lines.append(f"  raw tables absent (read as empty): {', '.join(self.missing_raw_tables)}")
        for run in self.models:
            lines.append(f"  {run.layer:<12} {run.name:<40} {run.rows:>10} rows {run.seconds:>7.2f}s")
        if self.exceptions_by_type:
            by_type = ", ".join(f"{k}={v}" for k, v in sorted(self.exceptions_by_type.items()))
            lines.append(f"  exceptions: {self.exceptions_total} ({by_type})")
        else:
            lines.append("  exceptions: 0")
        return lines


@dataclass(frozen=True)
class Model:
    """A model: SQL from a file, or Python (`builder`) for the settlement calendar."""

    name: str
    layer: str
    sql: str | None = None
    deps: frozenset[str] = field(default_factory=frozenset)
    sources: frozenset[str] = field(default_factory=frozenset)
    builder: Callable[["_Build"], None] | None = None
    path: Path | None = None


def load_models() -> dict[str, Model]:
    """Every model: the SQL files under `transforms/models/<layer>/` plus the calendar."""
    models: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((MODELS_DIR / layer).glob("*.sql")):
            sql = path.read_text()
            name = path.stem
            if name in models:
                raise ValueError(f"two models are named {name!r}")
            models[name] = Model(
                name, layer, sql=sql, deps=frozenset(refs_of(sql)), sources=frozenset(sources_of(sql)), path=path
            )
    # Python model: the calendar needs the date range of the staged data and the as-of dates
    models["settlement_calendar"] = Model(
        "settlement_calendar",
        "marts",
        deps=frozenset({"stg_instamojo__payments", "stg_instamojo__payouts", "int_instamojo__merchants"}),
        builder=_build_calendar,
    )
    for model in models.values():
        unknown = model.deps - set(models)
        if unknown:
            raise ValueError(f"model {model.name} refers to unknown model(s) {sorted(unknown)}")
    missing = set(MARTS) - set(models)
    if missing:
        raise ValueError(f"marts declared in transforms.marts without a model: {sorted(missing)}")
    return models


def build_order(models: dict[str, Model]) -> list[Model]:
    """Models sorted so each comes after the ones it refers to (stable: layer, then name)."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    pending = sorted(models.values(), key=lambda m: (rank[m.layer], m.name))
    done: set[str] = set()
    ordered: list[Model] = []
    while pending:
        ready = [m for m in pending if m.deps <= done]
        if not ready:
            raise ValueError(f"models refer to each other in a cycle: {sorted(m.name for m in pending)}")
        model = ready[0]
        ordered.append(model)
        done.add(model.name)
        pending.remove(model)
    return ordered


def build_marts(
    warehouse: Warehouse,
    *,
    raw_schema: str = "instamojo_raw",
    marts_schema: str = "instamojo",
    settings: ReconciliationSettings = ReconciliationSettings(),
) -> BuildReport:
    """Rebuild every reconciliation mart in `marts_schema` from the raw tables in `raw_schema`.

    Reads only the raw payments, payouts, orders and order_payments tables; any of them may be
    absent (a scope the merchant did not grant), which reads as empty. The rebuild is atomic for
    readers on other connections (see the module docstring). Returns per-model rows and seconds
    and the exceptions counted by type.
    """
    check_identifier("raw schema", raw_schema)
    check_identifier("marts schema", marts_schema)
    if raw_schema == marts_schema:
        raise ValueError(f"raw and marts schema must differ (both {raw_schema!r})")
    if not isinstance(settings, ReconciliationSettings):
        raise TypeError(f"settings must be a ReconciliationSettings, got {type(settings).__name__}")
    started = time.perf_counter()
    build = _Build(warehouse, raw_schema, marts_schema, settings)
    models = build_order(load_models())
    with warehouse.transaction():
        build.drop_temp_tables(models)  # leftovers of an earlier failed build on this connection
        for model in models:
            build.run(model)
        publish_started = time.perf_counter()
        warehouse.execute(f"CREATE SCHEMA IF NOT EXISTS {marts_schema}")
        for mart in MARTS.values():
            build.publish(mart)
        publish_seconds = time.perf_counter() - publish_started
        by_type, by_severity = build.exception_counts()
        build.drop_temp_tables(models)
    return BuildReport(
        raw_schema=raw_schema,
        marts_schema=marts_schema,
        dialect=warehouse.dialect,
        models=tuple(build.runs),
        publish_seconds=publish_seconds,
        seconds=time.perf_counter() - started,
        exceptions_by_type=by_type,
        exceptions_by_severity=by_severity,
        missing_raw_tables=tuple(sorted(t for t, s in build.shapes.items() if not s.exists)),
    )


class _Build:
    """The state of one build: the warehouse, parameters and what ran so far."""

    def __init__(self, warehouse: Warehouse, raw_schema: str, marts_schema: str, settings: ReconciliationSettings):
        self.warehouse = warehouse
        self.raw_schema = raw_schema
        self.marts_schema = marts_schema
        self.settings = settings
        self.shapes: dict[str, RawTableShape] = {}
        self.runs: list[ModelRun] = []
        # one clock for the whole build, so every model agrees on "now"
        self.build_time = datetime.now(timezone.utc).replace(microsecond=0)
        self.variables = {
            "timezone": _sql_text(SETTLEMENT_TIMEZONE),
            "payout_tolerance": _sql_money(settings.payout_tolerance),
            "order_tolerance": _sql_money(settings.order_tolerance),
            "as_of": _sql_timestamp(settings.as_of if isinstance(settings.as_of, datetime) else None),
            "as_of_mode": _sql_text(settings.as_of if isinstance(settings.as_of, str) else "fixed"),
            "build_time": _sql_timestamp(self.build_time),
        }

    # -- templating -------------------------------------------------------------------------
    def shape(self, table: str) -> RawTableShape:
        if table not in self.shapes:
            exists = self.warehouse.table_exists(self.raw_schema, table)
            columns = frozenset(self.warehouse.columns_of(self.raw_schema, table)) if exists else frozenset()
            self.shapes[table] = RawTableShape(exists, columns)
        return self.shapes[table]

    def render(self, sql: str) -> str:
        return render(
            sql,
            source=lambda t: source_sql(t, self.raw_schema, self.shape(t)),
            ref=temp_name,
            variables=self.variables,
        )

    # -- running ----------------------------------------------------------------------------
    def run(self, model: Model) -> None:
        started = time.perf_counter()
        table = temp_name(model.name)
        if model.builder is not None:
            model.builder(self)
        else:
            assert model.sql is not None
            self.warehouse.execute(f"CREATE TEMPORARY TABLE {table} AS\n{self.render(model.sql)}")
        rows = self.count(table)
        self.runs.append(ModelRun(model.name, model.layer, rows, time.perf_counter() - started))

    def count(self, table: str) -> int:
        _, rows = self.warehouse.query(f"SELECT COUNT(*) FROM {table}")
        return int(rows[0][0])

    def drop_temp_tables(self, models: list[Model]) -> None:
        for model in models:
            self.warehouse.execute(f"DROP TABLE IF EXISTS {temp_name(model.name)}")

    def publish(self, mart: Mart) -> None:
        """Replace `marts_schema.<mart>` with the model's rows, typed as declared."""
        target = f"{self.marts_schema}.{mart.name}"
        columns = ", ".join(mart.column_names)
        self.warehouse.execute(f"DROP TABLE IF EXISTS {target}")
        self.warehouse.execute(mart.create_table_sql(self.marts_schema))
        self.warehouse.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {temp_name(mart.name)}")
        # the descriptions, for analysts browsing the database; one round trip for all of them
        comments = [f"COMMENT ON TABLE {target} IS {_sql_text(f'{mart.description} Grain: {mart.grain}.')}"]
        comments += [f"COMMENT ON COLUMN {target}.{c.name} IS {_sql_text(c.description)}" for c in mart.columns]
        self.warehouse.execute(";\n".join(comments))

    def exception_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        table = temp_name("reconciliation_exceptions")
        _, by_type = self.warehouse.query(
            f"SELECT exception_type, COUNT(*) FROM {table} GROUP BY exception_type ORDER BY exception_type"
        )
        _, by_severity = self.warehouse.query(
            f"SELECT severity, COUNT(*) FROM {table} GROUP BY severity ORDER BY severity"
        )
        return {k: int(v) for k, v in by_type}, {k: int(v) for k, v in by_severity}


def _build_calendar(build: _Build) -> None:
    """The settlement calendar over every date the staged data and the as-of dates touch."""
    tz = build.variables["timezone"]
    _, rows = build.warehouse.query(
        f"""
        SELECT MIN(d), MAX(d) FROM (
            SELECT payment_date AS d FROM {temp_name('stg_instamojo__payments')}
            UNION ALL
            SELECT paid_out_date FROM {temp_name('stg_instamojo__payouts')}
            UNION ALL
            SELECT as_of_date FROM {temp_name('int_instamojo__merchants')}
        ) AS dates
        """
    )
    first, last = rows[0]
    if first is None:  # no data at all: a calendar around the build's date, for analysts
        first = last = _as_date(build.warehouse.query(f"SELECT CAST({build.variables['build_time']} AT TIME ZONE {tz} AS DATE)")[1][0][0])
    first, last = _as_date(first), _as_date(last)
    days = settlement_calendar(first, last, build.settings)
    # extend to the furthest expected/overdue date, so those dates have their own rows (the
    # marts look up their business-day numbers)
    days = settlement_calendar(first, max(last, max(d.overdue_after_date for d in days)), build.settings)
    table = temp_name("settlement_calendar")
    build.warehouse.execute(
        f"CREATE TEMPORARY TABLE {table} (calendar_date DATE, is_business_day BOOLEAN, holiday_name TEXT, "
        "business_day_number INTEGER, expected_payout_date DATE, overdue_after_date DATE)"
    )
    for start in range(0, len(days), _CALENDAR_BATCH):
        values = ",\n".join(
            f"({_sql_date(d.calendar_date)}, {'TRUE' if d.is_business_day else 'FALSE'}, "
            f"{_sql_text(d.holiday_name) if d.holiday_name else 'CAST(NULL AS TEXT)'}, {d.business_day_number}, "
            f"{_sql_date(d.expected_payout_date)}, {_sql_date(d.overdue_after_date)})"
            for d in days[start : start + _CALENDAR_BATCH]
        )
        build.warehouse.execute(f"INSERT INTO {table} VALUES\n{values}")


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date from the warehouse, got {value!r}")


# -- SQL literals (values come from settings and code, never from the data) ----------------------
def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_date(value: date) -> str:
    return f"DATE '{value.isoformat()}'"


def _sql_money(value) -> str:
    return f"CAST('{value:f}' AS DECIMAL(18,2))"


def _sql_timestamp(value: datetime | None) -> str:
    if value is None:
        return "CAST(NULL AS TIMESTAMPTZ)"
    utc = value.astimezone(timezone.utc)
    return f"CAST('{utc.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00' AS TIMESTAMPTZ)"

