"""Run the suites with great-expectations and turn its results into a `CheckReport`.

Why pandas and not great-expectations' SQL path: through duckdb-engine, great-expectations
1.24 answers every expectation with an exception (IndexError in resolve_metric_bundle;
schema-qualified tables not found). So each suite's batch is read with the warehouse's own
DB-API connection (`transforms.warehouse.Warehouse`, same code on DuckDB and Postgres) into a
pandas DataFrame whose every column has dtype `object`: money stays `decimal.Decimal`, never
float, and comparisons such as `≥ 0` are exact Python comparisons of Decimals.

Trust, but verify: a result counts as a verdict only if great-expectations returned one for
that very expectation, with a boolean `success` and no exception recorded. Anything else (an
exception inside great-expectations, a missing or unrecognisable result, a failed SQL read)
fails the run, whatever the expectation's severity.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checks.report import CheckReport, ExpectationResult, SuiteResult
from checks.settings import CheckSettings
from checks.spec import Expect, PlanContext, SuitePlan, SuiteSpec

if TYPE_CHECKING:  # pragma: no cover
    from transforms.warehouse import Warehouse

log = logging.getLogger(__name__)

DOCS_SITE = "instamojo_checks"
# What great-expectations writes into the docs folder; only these are cleared before a run,
# so a misconfigured docs_dir never loses anything else.
_DOCS_ENTRIES = ("index.html", "validations", "expectations", "static")


def all_suites() -> list[SuiteSpec]:
    """Every suite, raw tables first, then the marts."""
    from checks.marts_suites import marts_suites
    from checks.raw_suites import raw_suites

    return raw_suites() + marts_suites()


def select_suites(specs: list[SuiteSpec], names: Iterable[str] | None) -> list[SuiteSpec]:
    """The suites named (`raw.payments`), or whole layers (`raw`, `marts`); all when `names`
    is None. An unknown name is an error naming the known ones."""
    if names is None:
        return specs
    known = {s.name for s in specs} | {s.layer for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"checks: unknown suite(s) {unknown}; known: {sorted(known)}")
    wanted = set(names)
    return [s for s in specs if s.name in wanted or s.layer in wanted]


def run_checks(
    warehouse: Warehouse,
    *,
    raw_schema: str = "instamojo_raw",
    marts_schema: str = "instamojo",
    settings: CheckSettings = CheckSettings(),
) -> CheckReport:
    """Run the expectation suites on the warehouse and return a report.

    Reads the raw dataset `raw_schema` and the marts dataset `marts_schema` through
    `warehouse` (DuckDB or Postgres), validates each suite with great-expectations (pandas
    engine, in an ephemeral context: nothing persisted but the Data Docs, no network), writes
    HTML Data Docs to `settings.docs_dir` and returns a `CheckReport`: `.ok` (no failing
    error-severity expectation and no expectation that raised), `.summary()`, per-suite
    results and `.docs_index`.
    """
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    specs = select_suites(all_suites(), settings.suites)
    ctx = _plan_context(warehouse, raw_schema, marts_schema, settings, started)

    gx = _import_gx()
    context = _make_context(gx, settings.docs_dir)
    run_name = f"check-{started:%Y%m%dT%H%M%SZ}"
    suites = [_run_suite(gx, context, warehouse, ctx, spec, run_name, started) for spec in specs]

    docs_index = docs_error = None
    if settings.docs_dir is not None:
        try:
            docs_index = _write_docs(context, settings.docs_dir)
        except Exception as exc:  # the verdicts stand; the report says the docs are missing
            docs_error = f"{type(exc).__name__}: {exc}"
            log.warning("checks: Data Docs not written to %s: %s", settings.docs_dir, docs_error)
    return CheckReport(
        suites=suites,
        docs_index=docs_index,
        docs_error=docs_error,
        started_at=started,
        seconds=time.perf_counter() - t0,
        backend=warehouse.dialect,
    )


def plan_checks(
    warehouse: Warehouse,
    *,
    raw_schema: str = "instamojo_raw",
    marts_schema: str = "instamojo",
    settings: CheckSettings = CheckSettings(),
) -> list[tuple[SuiteSpec, SuitePlan]]:
    """What `run_checks` would run on this warehouse, without running it (no great-expectations
    import): each selected suite with its plan (its SQL and expectations, or why it is skipped).
    For documentation and tests."""
    started = dt.datetime.now(dt.UTC)
    ctx = _plan_context(warehouse, raw_schema, marts_schema, settings, started)
    return [(spec, spec.plan(ctx)) for spec in select_suites(all_suites(), settings.suites)]


def _plan_context(warehouse, raw_schema, marts_schema, settings: CheckSettings, started) -> PlanContext:
    ctx = PlanContext(
        raw_schema=raw_schema,
        marts_schema=marts_schema,
        dialect=warehouse.dialect,
        settings=settings,
        now=settings.now or started,
        tables=_discover(warehouse, raw_schema, marts_schema),
    )
    ctx.scalar = lambda sql: warehouse.query(sql)[1][0][0]
    return ctx


# --- great-expectations ------------------------------------------------------------------------


def _import_gx():
    """Import great-expectations (≈4 s, hence only here) with analytics off: this machine, and
    CI, have no internet, and the checks must not try to reach it."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def _make_context(gx, docs_dir: Path | None):
    """An ephemeral context (in-memory stores) whose only Data Docs site is `docs_dir`."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(docs_dir).resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas("warehouse")
    return context


def _write_docs(context, docs_dir: Path) -> Path:
    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    for entry in _DOCS_ENTRIES:  # last run's pages only; the index must not list stale runs
        path = docs_dir / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    context.build_data_docs(site_names=[DOCS_SITE])
    index = docs_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"great-expectations did not write {index}")
    return index


def _run_suite(gx, context, warehouse, ctx: PlanContext, spec: SuiteSpec, run_name: str, started) -> SuiteResult:
    qualified = f"{ctx.schema(spec.layer)}.{spec.table}"
    result = SuiteResult(name=spec.name, table=qualified)
    try:
        plan = spec.plan(ctx)
    except Exception as exc:
        result.results.append(_raised_result(spec, qualified, "plan the suite", exc))
        return result
    result.skipped_expectations = list(plan.skipped)
    if plan.missing is not None:
        result.results.append(
            ExpectationResult(
                suite=spec.name, table=qualified, expectation="table_exists",
                what=plan.missing, why="a table the checks guard must exist", severity="error",
                success=False,
            )
        )
        return result
    if plan.skip_reason is not None:
        result.skip_reason = plan.skip_reason
        return result

    try:
        if plan.sql is None:
            raise ValueError(f"suite {spec.name} planned no query and gave no reason (neither missing nor skipped)")
        frame = _read_frame(warehouse, plan.sql)
    except Exception as exc:
        result.results.append(_raised_result(spec, qualified, "read the table", exc))
        return result
    result.rows = len(frame)
    result.results = _validate(gx, context, spec, plan, frame, qualified, ctx.settings, run_name, started)
    return result


def _validate(gx, context, spec, plan: SuitePlan, frame, qualified, settings, run_name, started) -> list[ExpectationResult]:
    """Validate `frame` against the plan's expectations; one result per expectation, always."""
    from great_expectations.core.run_identifier import RunIdentifier

    expects = list(plan.expectations)
    slot_of: dict[str, int] = {}  # great-expectations' expectation id -> position in `expects`
    # the columns great-expectations returns for each offending row: the key, plus what any
    # expectation wants printed next to it (e.g. a payment's payout_id)
    index_columns = list(plan.index_columns)
    for e in expects:
        for c in (e.id_columns or ()) + (e.detail_columns or ()):
            if c not in index_columns and c not in e.columns:
                index_columns.append(c)
    index_columns = [c for c in index_columns if c in frame.columns]
    shown = settings.offending_ids_shown
    result_format = {
        "result_format": "SUMMARY",
        "unexpected_index_column_names": index_columns,
        # duplicates list each offending row; ask for enough to name `shown` distinct ids
        "partial_unexpected_count": max(20, 4 * shown),
    }
    try:
        # built whole and added once: adding expectations one by one re-serialises the suite
        # each time (≈20 ms per expectation)
        suite = context.suites.add(
            gx.ExpectationSuite(
                name=spec.name,
                meta={"table": qualified},
                expectations=[
                    getattr(gx.expectations, e.type)(
                        **e.kwargs, meta={"severity": e.severity, "why": e.why}, description=e.description
                    )
                    for e in expects
                ],
            )
        )
        if len(suite.expectations) != len(expects):
            raise RuntimeError(f"suite holds {len(suite.expectations)} expectations, expected {len(expects)}")
        for i, added in enumerate(suite.expectations):
            if not added.id or added.id in slot_of or added.expectation_type != _snake(expects[i].type):
                raise RuntimeError(f"suite expectation #{i} ({added.expectation_type}, id {added.id!r}) "
                                   f"does not match {expects[i].type}")
            slot_of[added.id] = i
        asset = context.data_sources.get("warehouse").add_dataframe_asset(spec.name)
        batch_definition = asset.add_batch_definition_whole_dataframe("all rows")
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
        )
        outcome = validation.run(
            batch_parameters={"dataframe": frame},
            result_format=result_format,
            run_id=RunIdentifier(run_name=run_name, run_time=started),
        )
    except Exception as exc:
        # nothing was judged: every expectation of the suite fails with the reason
        return [_result(spec, qualified, e, success=False, raised=f"{type(exc).__name__}: {exc}") for e in expects]

    slots: list[ExpectationResult | None] = [None] * len(expects)
    strays: list[ExpectationResult] = []
    for r in getattr(outcome, "results", None) or []:
        config = getattr(r, "expectation_config", None)
        config_id = getattr(config, "id", None)
        slot = slot_of.get(config_id) if config_id is not None else None
        if slot is None or slots[slot] is not None:
            # a result that cannot be tied to exactly one of our expectations is no verdict
            strays.append(
                ExpectationResult(
                    suite=spec.name, table=qualified, expectation=str(getattr(config, "type", "unknown")),
                    what="a result great-expectations returned for no expectation of this suite",
                    why="every result must belong to exactly one expectation",
                    severity="error", success=False,
                    raised=f"unexpected result for expectation id {getattr(config, 'id', None)!r}",
                )
            )
            continue
        judgement = slots[slot] = _from_gx(spec, qualified, expects[slot], r, plan.index_columns, shown)
        judged = judgement.element_count
        if judgement.raised is None and judged is not None and judged != len(frame):
            # a verdict on other rows than the batch's is no verdict on this table
            judgement.success = False
            judgement.raised = f"great-expectations judged {judged} rows, the batch has {len(frame)}"
        missing = [c for c in expects[slot].columns if c not in frame.columns]
        if judgement.raised is not None and missing:
            # great-expectations' own message can be cryptic (an IndexError): say what is wrong
            judgement.raised = f"column {', '.join(missing)} missing from {qualified} ({judgement.raised})"
    results = [
        slot if slot is not None
        else _result(spec, qualified, e, success=False, raised="great-expectations returned no result for it")
        for e, slot in zip(expects, slots, strict=True)
    ]
    return results + strays


def _from_gx(spec, qualified, e: Expect, r, key_columns, shown) -> ExpectationResult:
    """Turn one great-expectations result into ours, insisting on a real verdict."""
    raised = _exception_message(getattr(r, "exception_info", None))
    success = getattr(r, "success", None)
    if raised is None and not isinstance(success, bool):
        raised = f"great-expectations gave no verdict (success={success!r})"
    details = getattr(r, "result", None) or {}
    if not isinstance(details, dict):
        details = {}
    out = _result(spec, qualified, e, success=bool(success) and raised is None, raised=raised)
    out.unexpected_count = details.get("unexpected_count")
    out.element_count = details.get("element_count")
    out.observed_value = details.get("observed_value")
    if out.failed and raised is None:
        out.offending = _offending(e, details, key_columns, shown)
    return out


def _exception_message(info: Any) -> str | None:
    """The message of an exception recorded in a result's `exception_info`, or None when there
    was none. great-expectations nests it per metric when a metric failed; anything
    unrecognisable counts as an exception (a check must never pass on a shape we misread)."""
    if info is None:
        return "great-expectations returned no exception_info, so the verdict cannot be trusted"
    if not isinstance(info, dict):
        return f"unrecognised exception_info {info!r}"
    if "raised_exception" in info:
        if info["raised_exception"] is False:
            return None
        return str(info.get("exception_message") or "great-expectations raised an exception")
    if not info:
        return None
    messages = []
    for value in info.values():
        msg = _exception_message(value)
        if msg is not None:
            messages.append(msg)
    return "; ".join(dict.fromkeys(messages)) or None


def _offending(e: Expect, details: dict, key_columns, shown: int) -> list[str]:
    """Up to `shown` distinct offending rows: `id (detail=value, …)`."""
    rows = details.get("partial_unexpected_index_list") or []
    id_cols = list(e.id_columns or key_columns)
    detail_cols = list(e.detail_columns) if e.detail_columns is not None else [
        c for c in e.columns if c not in id_cols
    ]
    out: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        ident = "/".join(str(row[c]) for c in id_cols if c in row)
        extras = [f"{c}={_fmt(row[c])}" for c in detail_cols if c in row]
        text = f"{ident} ({', '.join(extras)})" if extras else ident
        if text not in out:
            out.append(text)
        if len(out) >= shown:
            break
    mismatched = (details.get("details") or {}).get("mismatched") if isinstance(details.get("details"), dict) else None
    if not out and isinstance(mismatched, dict):
        # a table's column set: name the columns that should not (or should) be there
        out += [f"unexpected column {c}" for c in mismatched.get("unexpected") or []]
        out += [f"missing column {c}" for c in mismatched.get("missing") or []]
    if not out:
        # expectations without row indexes list the offending values instead
        for value in details.get("partial_unexpected_list") or []:
            text = "/".join(str(v) for v in value.values()) if isinstance(value, dict) else _fmt(value)
            if text not in out:
                out.append(text)
            if len(out) >= shown:
                break
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _result(spec, qualified, e: Expect, *, success: bool, raised: str | None) -> ExpectationResult:
    return ExpectationResult(
        suite=spec.name, table=qualified, expectation=_snake(e.type), what=e.what, why=e.why,
        severity=e.severity, success=success, raised=raised,
    )


def _raised_result(spec, qualified, doing: str, exc: Exception) -> ExpectationResult:
    return ExpectationResult(
        suite=spec.name, table=qualified, expectation="suite",
        what=f"the checks could {doing}", why="a suite that cannot run has judged nothing",
        severity="error", success=False, raised=f"could not {doing}: {type(exc).__name__}: {exc}",
    )


def _snake(name: str) -> str:
    out: list[str] = []
    for ch in name:
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# --- the warehouse -------------------------------------------------------------------------


def _discover(warehouse, raw_schema: str, marts_schema: str) -> dict:
    """{(layer, table): [columns in order]} for every table of the two schemas."""
    p = warehouse.placeholder
    _, rows = warehouse.query(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        f"WHERE table_schema IN ({p}, {p}) ORDER BY table_schema, table_name, ordinal_position",
        (raw_schema, marts_schema),
    )
    tables: dict = {}
    for schema, table, column in rows:
        layer = "raw" if schema == raw_schema else "marts"
        tables.setdefault((layer, table), []).append(column)
    return tables


def _read_frame(warehouse, sql: str):
    """The query's rows as a DataFrame of `object` columns: values exactly as the driver
    returned them (Decimal money, aware datetimes), no numeric inference, no float."""
    import pandas as pd

    columns, rows = warehouse.query(sql)
    return pd.DataFrame(rows, columns=columns, dtype=object)
