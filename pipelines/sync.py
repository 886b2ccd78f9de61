"""Sync many merchants in one dlt pipeline run: fetched concurrently by the source, normalized and
loaded together, so dlt's costs per run are paid once however many merchants there are. One
merchant's failure (revoked token, missing scope, a malformed page) never stops or corrupts the
others: its cursors stay where they were, and the run says what failed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from dlt.pipeline.exceptions import PipelineStepFailed

from sources.instamojo import MerchantSpec, RunNotes, instamojo_source
from sources.instamojo.errors import InstamojoError, redact
from sources.instamojo.schema import RAW_TABLES
from sources.instamojo.token_store import TokenStoreError
from transforms.dbt import note_changed

from .config import Settings
from .memory import bounded_memory, cap_malloc_arenas, release_freed_memory
from .upgrade import LegacyStates
from .warehouse import engine_pipeline, loader_file_format, warehouse_target

log = logging.getLogger(__name__)


@dataclass
class MerchantResult:
    """What one merchant's sync did; printed in the run summary. Holds no secret."""

    merchant: str
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # table → rows loaded this run
    requests: dict[str, int] = field(default_factory=dict)  # endpoint → requests made
    seconds_by_resource: dict[str, float] = field(default_factory=dict)
    cursors: dict[str, Any] = field(default_factory=dict)  # family → cursor after the run
    skipped: dict[str, str] = field(default_factory=dict)  # resource → why
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


@dataclass
class SyncRun:
    """One run of the engine: every merchant's result, and what happened to the load."""

    results: list[MerchantResult]
    seconds: float = 0.0
    load_ok: bool = True
    load_error: str | None = None
    finished_interrupted: bool = False  # an earlier run's extracted data was loaded first

    @property
    def ok(self) -> bool:
        return self.load_ok and all(r.ok for r in self.results)

    @property
    def changed_merchants(self) -> list[str]:
        """Merchants whose raw rows this run wrote (what the marts must rebuild)."""
        return list(self.changed_tables)

    @property
    def changed_tables(self) -> dict[str, list[str]]:
        """Each merchant whose raw rows this run wrote -> the raw tables it wrote them to (a mart
        rebuilds the merchant only if it reads one of them: transforms.dbt.note_changed). After
        finishing the load of an interrupted earlier run, whose merchants and tables nobody
        counted: every merchant of this run, with every table."""
        if not self.load_ok:
            return {}
        if self.finished_interrupted:
            return {r.merchant: sorted(RAW_TABLES) for r in self.results}
        return {r.merchant: sorted(t for t, n in r.rows.items() if n) for r in self.results if r.total_rows}


def sync_merchants(
    settings: Settings,
    merchants: Sequence[str] | None = None,
    *,
    resources: Sequence[str] | None = None,
    backfill_from: datetime | None = None,
    progress: Any = None,
    pipeline_name: str | None = None,
    on_merchant_done: Callable[[RunNotes], None] | None = None,
    load_guard: Callable[[Any], AbstractContextManager[Any]] | None = None,
) -> SyncRun:
    """Extract, normalize and load `merchants` (default: all configured) in one pipeline run.
    Never raises for a merchant's own failures: they come back in its `MerchantResult.error`,
    already redacted, with what to do about them. `load_guard(pipeline)`: a context manager held
    around the load step only (after extract and normalize), e.g. a lock that keeps parallel
    pipelines from creating the same tables at once (orchestration/sync.py)."""
    # before DuckDB and the source start their threads, each of which would get an arena
    cap_malloc_arenas()  # pipelines/memory.py
    names = list(merchants) if merchants is not None else list(settings.merchants)
    started = time.perf_counter()
    run = SyncRun(results=[])
    policy = settings.personal.policy()  # a missing key: ConfigError, before any request
    settings.token_store.merchants()  # readable, an earlier version's file moved in (TokenStoreError)
    forgotten = forgotten_merchants(settings, names)
    names = [n for n in names if n not in forgotten]
    settings.token_store.check_writable()  # before any refresh token is spent (TokenStoreError)
    check_writable_folders(settings)  # the pipelines folder and the published copy's (ConfigError)
    pipeline = engine_pipeline(settings, pipeline_name, progress)
    drop_half_deleted_packages(pipeline)
    if not pipeline.has_pending_data:
        # this pipeline's state as the destination has it, when newer than the working folder's
        # (a worker that starts with an empty folder)
        pipeline.sync_destination()
    known = pipeline.state.get("sources", {}).get("instamojo", {}).get("merchants", {})
    legacy = LegacyStates(settings, pipeline.destination)
    # merchants new to this pipeline: another shard's state, or an earlier version's; read
    # before the run, never inside dlt's extract
    inherited = legacy.prepare([n for n in names if n not in known], own_pipeline=pipeline.pipeline_name)
    pipeline.activate()
    notes: dict[str, RunNotes] = {}
    source = instamojo_source(
        merchants=[MerchantSpec(n, settings.refresh_tokens.get(n)) for n in names],
        base_url=settings.base_url,
        # None is left to dlt's own resolution (require_credentials() has explained what is missing)
        client_id=cast(str, settings.client_id),
        client_secret=cast(str, settings.client_secret),
        token_store_path=str(settings.token_store_path),
        resources=list(resources) if resources else None,
        backfill_from=backfill_from,
        inherited_state=inherited.get,
        notes=notes,
        on_merchant_done=on_merchant_done,
        pii_policy=policy,
        **vars(settings.source),
    )
    step_error: str | None = None
    with bounded_memory():  # a long backfill's freed memory goes back (pipelines/memory.py)
        try:
            if pipeline.has_pending_data:
                # An earlier run stopped after extracting (crash, kill, destination down). dlt's
                # `run` would load that package and skip the new data; finish it first.
                pipeline.normalize()
                pipeline.load()
                run.finished_interrupted = True
            file_format: Any = loader_file_format(settings)  # one of dlt's format names
            # what dlt's `run` does (the state was synced above), in its steps: freed memory goes
            # back between extract and the load, and a guard can hold the load alone
            pipeline.extract(source, loader_file_format=file_format)
            release_freed_memory()
            pipeline.normalize()
            with load_guard(pipeline) if load_guard is not None else nullcontext():
                pipeline.load()
        except PipelineStepFailed as exc:
            step_error = _explain_step_failure(exc)
            run.load_ok = False
        except InstamojoError as exc:
            step_error = str(exc)
            run.load_ok = False
    run.load_error = step_error
    states = pipeline.state.get("sources", {}).get("instamojo", {}).get("merchants", {})
    for name in names:
        run.results.append(_result(name, notes.get(name), states.get(name), step_error))
    run.results += [forgotten[n] for n in forgotten]
    note_forget_due(settings, run.results)
    if run.load_ok:
        prune_pipeline_folder(pipeline)
        legacy.retire([r.merchant for r in run.results if states.get(r.merchant)])
        note_changed(warehouse_target(settings), run.changed_tables)
    run.seconds = time.perf_counter() - started
    return run


def forgotten_merchants(settings: Settings, names: Sequence[str]) -> dict[str, MerchantResult]:
    """Merchants erased with `make forget` and not re-authorized since: not synced, each with
    a result that says so (not a failure: its name may simply still be in secrets.toml). A
    merchant re-authorized since has its mark removed and is synced from scratch."""
    store = settings.token_store
    skipped: dict[str, MerchantResult] = {}
    for name in names:
        when = store.forgotten(name, settings.refresh_tokens.get(name))
        if when is None:
            store.clear_forgotten(name)
            continue
        result = MerchantResult(name, ok=True)
        result.warnings.append(
            f"forgotten (`make forget`, {when}): not synced. To sync it again, re-authorize it with "
            f"`make authorize MERCHANT={name}`; otherwise remove it from .dlt/secrets.toml "
            "(sources.instamojo.refresh_tokens) and sources.instamojo.merchants")
        skipped[name] = result
    return skipped


def note_forget_due(settings: Settings, results: Sequence[MerchantResult]) -> None:
    """A failed merchant whose refresh token Instamojo has refused for longer than
    `revoked_grace_days`: its summary says `make forget` is due (nothing is erased by itself)."""
    from datetime import UTC

    grace = settings.personal.revoked_grace_days
    now = datetime.now(UTC)
    for result in results:
        if result.ok:
            continue
        since = settings.token_store.refused_since(result.merchant)
        if since is None:
            continue
        days = (now - datetime.fromisoformat(since)).total_seconds() / 86_400
        if days >= grace:
            result.warnings.append(
                f"Instamojo has refused its refresh token since {since} ({days:.0f} day(s), revoked_grace_days = "
                f"{grace:g}): the merchant has withdrawn the app's access; `make forget MERCHANT={result.merchant}` "
                "is due (docs/personal-data.md), unless it is re-authorized")


def check_writable_folders(settings: Settings) -> None:
    """Before any work: the folders a run writes (dlt's state and packages, the DuckDB working
    file, the analysts' copy) exist or can be made, and take a file."""
    import tempfile

    from .config import ConfigError

    folders = {("instamojo_elt.pipelines_dir", settings.pipelines_dir)}
    if settings.destination == "duckdb":
        folders.add(("instamojo_elt.duckdb_path", settings.duckdb_path.parent))
    for key, folder in sorted(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ConfigError(f"the folder {folder} ({key}) is not writable ({exc.strerror or exc}); a sync "
                              "writes its state and data there. Make it writable, or set "
                              f"{key} to a writable place.") from None


def drop_half_deleted_packages(pipeline: Any) -> list[str]:
    """Remove what a run killed while dlt tidied up after normalizing left behind.

    dlt's normalize first commits the normalized package (an atomic rename into
    `load/normalized`), then deletes the extracted one, folder by folder. Killed (SIGKILL) in
    between, the half-deleted extracted package stays, and every later run fails normalizing it
    (the same class as https://github.com/dlt-hub/dlt/issues/4446). Its data is safe in the
    normalized or loaded copy with the same load id, so the leftover is removed; nothing else is
    touched."""
    import shutil

    root = Path(pipeline.working_dir)
    extracted = root / "normalize" / "extracted"
    removed = []
    for package in sorted(extracted.iterdir()) if extracted.is_dir() else []:
        committed = any((root / "load" / stage / package.name).is_dir() for stage in ("normalized", "loaded"))
        if committed:
            shutil.rmtree(package, ignore_errors=True)
            removed.append(package.name)
            log.warning("removed the extracted package %s, left half-deleted by a killed run (its normalized "
                        "copy is kept)", package.name)
    return removed


# Loaded packages kept in the pipeline's folder (dlt keeps every one): the newest few, to look at
# what the last runs loaded; older ones only grow the folder.
KEEP_LOADED_PACKAGES = 3


def prune_pipeline_folder(pipeline: Any, keep: int = KEEP_LOADED_PACKAGES) -> list[str]:
    """Keep the pipeline's folder bounded after a successful load: dlt keeps every loaded package
    (its job files and schema) and any package an extract started and never committed (a killed
    run); both are removed here, except the newest `keep` loaded ones. Pending packages
    (extracted or normalized, not yet loaded) are never touched: the next run loads them."""
    import shutil

    root = Path(pipeline.working_dir)
    removed: list[str] = []
    loaded = root / "load" / "loaded"
    packages = sorted((p for p in loaded.iterdir() if p.is_dir()), key=lambda p: float(p.name)) if loaded.is_dir() else []
    for package in packages[:-keep] if keep else packages:
        shutil.rmtree(package, ignore_errors=True)
        removed.append(package.name)
    started = root / "load" / "new"  # extracts that never committed: nothing in them was counted
    for package in sorted(started.iterdir()) if started.is_dir() else []:
        shutil.rmtree(package, ignore_errors=True)
        removed.append(package.name)
    return removed


def sync_merchant(settings: Settings, merchant: str, **kwargs: Any) -> MerchantResult:
    """Sync one merchant alone (a run of its own)."""
    return sync_merchants(settings, [merchant], **kwargs).results[0]


def _result(name: str, notes: RunNotes | None, state: dict[str, Any] | None, step_error: str | None) -> MerchantResult:
    result = MerchantResult(name)
    state = state or {}
    result.cursors = {family: (state.get(family) or {}).get("cursor") for family in ("payments", "payouts", "products", "orders")}
    if notes is None:
        result.error = step_error or f"merchant {name!r}: the run stopped before this merchant was synced"
        return result
    result.seconds = notes.seconds
    result.requests = dict(notes.requests_by_endpoint)
    result.seconds_by_resource = dict(notes.seconds_by_resource)
    result.skipped = dict(notes.skipped)
    result.warnings += _warnings(notes)
    errors = list(notes.errors)
    if step_error:
        errors.append(step_error)
    if errors:
        result.error = "; ".join(errors) + (
            " (its cursors did not move past anything that did not land; the next run retries)")
    result.ok = not errors
    if not step_error:
        result.rows = dict(notes.rows_by_table)
    return result


def _warnings(notes: RunNotes) -> list[str]:
    warnings = [f"{resource} skipped: {why}" for resource, why in notes.skipped.items()]
    if notes.unknown_fields:
        warnings.append(f"new API fields kept as text columns: {', '.join(sorted(notes.unknown_fields))}")
    fallbacks = sum(c.fallback_batches for c in notes.conversions)
    if fallbacks:
        warnings.append(f"{fallbacks} batch(es) went through the slower, coercing parser (values of another "
                        "JSON type than documented, or a page that had to be fetched again)")
    for record_id, column, text in notes.non_numeric_money:
        warnings.append(f"record {record_id!r}: {column} = {text!r} is not an amount; loaded as NULL ({column}__v_text)")
    warnings += notes.warnings
    return warnings


def _explain_step_failure(exc: PipelineStepFailed) -> str:
    """The root cause of a failed dlt step, with what it means for the data."""
    root: BaseException = exc
    while not isinstance(root, (InstamojoError, TokenStoreError)):
        # the cause, or the exception being handled when it was raised (unless `from None` hid it)
        below = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if below is None:
            break
        root = below
    cause = str(root) if isinstance(root, (InstamojoError, TokenStoreError)) else f"{root.__class__.__name__}: {root}"
    if exc.step == "extract":
        consequence = "nothing of this run was loaded and no cursor moved; the next run retries"
    else:
        consequence = (
            f"the {exc.step} step failed; the extracted data is kept in the pipeline folder and is "
            "loaded first by the next run"
        )
    return redact(f"{cause} ({consequence})")
