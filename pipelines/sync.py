"""Sync every configured merchant, each in its own dlt pipeline, so one merchant's failure
(revoked token, missing scope, a malformed page) never stops or corrupts the others."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from dlt.pipeline.exceptions import PipelineStepFailed

from sources.instamojo.errors import InstamojoError, redact
from sources.instamojo.source import RunNotes, instamojo_source

from .config import Settings
from .warehouse import loader_file_format, merchant_pipeline

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
    cursors: dict[str, Any] = field(default_factory=dict)  # "resource.cursor" → value after the run
    skipped: dict[str, str] = field(default_factory=dict)  # resource → why
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def sync_merchant(
    settings: Settings,
    merchant: str,
    *,
    resources: Sequence[str] | None = None,
    backfill_from: datetime | None = None,
    progress: Any = None,
) -> MerchantResult:
    """Extract, normalize and load one merchant. Never raises for the merchant's own failures:
    they come back in `MerchantResult.error`, already redacted, with what to do about them."""
    result = MerchantResult(merchant)
    notes = RunNotes(merchant)
    started = time.perf_counter()
    pipeline = merchant_pipeline(settings, merchant, progress)
    try:
        source = instamojo_source(
            merchant=merchant,
            base_url=settings.base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_tokens.get(merchant),
            token_store_path=str(settings.token_store_path),
            resources=list(resources) if resources else None,
            backfill_from=backfill_from,
            notes=notes,
            **vars(settings.source),
        )
        if pipeline.has_pending_data:
            # An earlier run stopped after extracting (crash, kill, destination down). dlt's
            # `run` would load that package and silently skip the new data; finish it first.
            pipeline.normalize()
            pipeline.load()
            result.warnings.append("finished loading the data an interrupted earlier run had extracted")
        pipeline.run(source, loader_file_format=loader_file_format(settings))
        result.ok = True
    except PipelineStepFailed as exc:
        result.error = _explain_step_failure(exc)
    except InstamojoError as exc:  # raised before extraction, e.g. a refused refresh token
        result.error = str(exc)
    except Exception as exc:  # a bug or an unexpected environment problem: still redacted
        log.exception("merchant %r: unexpected error", merchant)
        result.error = redact(f"merchant {merchant!r}: {exc.__class__.__name__}: {exc}")
    result.seconds = time.perf_counter() - started
    result.requests = dict(notes.requests_by_endpoint)
    result.seconds_by_resource = dict(notes.seconds_by_resource)
    result.skipped = dict(notes.skipped)
    result.warnings += _warnings(notes)
    if result.ok:
        trace = pipeline.last_trace
        normalize = trace.last_normalize_info if trace else None
        if normalize is not None:
            result.rows = {t: n for t, n in normalize.row_counts.items() if not t.startswith("_dlt")}
    result.cursors = cursors_of(pipeline)
    return result


def cursors_of(pipeline: Any) -> dict[str, Any]:
    """Where each incremental cursor of the pipeline stands (committed state)."""
    cursors: dict[str, Any] = {}
    for source_state in pipeline.state.get("sources", {}).values():
        for resource, state in source_state.get("resources", {}).items():
            for path, inc in state.get("incremental", {}).items():
                cursors[f"{resource}.{path}"] = inc.get("last_value")
    return cursors


def _warnings(notes: RunNotes) -> list[str]:
    warnings = [f"{resource} skipped: {why}" for resource, why in notes.skipped.items()]
    if notes.unknown_fields:
        warnings.append(f"new API fields kept as text columns: {', '.join(sorted(notes.unknown_fields))}")
    fallbacks = sum(c.fallback_batches for c in notes.conversions)
    if fallbacks:
        warnings.append(f"{fallbacks} batch(es) had values of another JSON type than documented; "
                        "read with the slower, coercing parser")
    for record_id, column, text in notes.non_numeric_money:
        warnings.append(f"record {record_id!r}: {column} = {text!r} is not an amount; loaded as NULL ({column}__v_text)")
    return warnings


def _explain_step_failure(exc: PipelineStepFailed) -> str:
    """The root cause of a failed dlt step, with what it means for the data."""
    root: BaseException = exc
    while not isinstance(root, InstamojoError) and (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    cause = str(root) if isinstance(root, InstamojoError) else f"{root.__class__.__name__}: {root}"
    if exc.step == "extract":
        consequence = "nothing of this merchant's run was loaded and its cursors did not move; the next run retries"
    else:
        consequence = (
            f"the {exc.step} step failed; the extracted data is kept in the pipeline folder and is "
            "loaded first by the next run"
        )
    return redact(f"{cause} ({consequence})")
