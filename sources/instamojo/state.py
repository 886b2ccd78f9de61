"""Each merchant's incremental state: where its cursors stand and what it has followed up.

Why not `dlt.sources.incremental`: dlt keeps one incremental cursor per resource and moves it as
items pass through, with no way to put back the cursor of one merchant whose listing failed
halfway while the others of the same run land (the ask for many OAuth configurations in one
extract is open upstream: https://github.com/dlt-hub/dlt/issues/3283). A resource per merchant and
endpoint would work, at dlt's per-resource cost times thousands of merchants. So each merchant's
state is a small JSON document kept in dlt's *source state* (`dlt.current.source_state()`), which
dlt commits with the load package, exactly like its own cursors: written only when the whole
extract succeeded, restored from the destination when the working folder is lost. Inside it, a
family's part is replaced only when that family's listing finished, so a cursor never moves past
anything that did not land.

The document, per merchant (timestamps are UTC ISO-8601 text, so they compare as strings):

    {"version": 1, "updated_at": "...",                      # when a run last committed it
     "account": {"id": "...", "username": "..."},            # who Instamojo says this is
     "payments": {"cursor": "..."},                          # newest created_at read
     "payouts":  {"cursor": "...", "followed_up": {id: paid_out_at}},
     "products": {"cursor": "...", "covers_read": {slug: created_at}},
     "orders":   {"cursor": "...", "watch": {id: created_at}}}   # orders seen pending
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

STATE_VERSION = 1
FAMILIES = ("payments", "payouts", "products", "orders")

MerchantState = dict[str, Any]


def iso(value: datetime) -> str:
    """UTC ISO-8601 with microseconds and `Z`, like the API's own timestamps (one fixed format,
    so these strings also compare correctly as text)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(value: Any) -> datetime | None:
    """A datetime from ISO text (or a datetime); None stays None."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def new_state() -> MerchantState:
    return {"version": STATE_VERSION, **{family: {} for family in FAMILIES}}


def family_state(state: Mapping[str, Any], family: str) -> dict[str, Any]:
    """A private copy of one family's part, for a listing to change and hand back on success."""
    return copy.deepcopy(dict(state.get(family) or {}))


def cursor_of(state: Mapping[str, Any], family: str) -> datetime | None:
    return parse_ts((state.get(family) or {}).get("cursor"))


def advance(old: str | None, seen: datetime | None) -> str | None:
    """The cursor after a listing that saw values up to `seen`: never moves backwards."""
    if seen is None:
        return old
    candidate = iso(seen)
    return candidate if old is None or candidate > old else old


def fingerprint_of(record: Mapping[str, Any]) -> str:
    """A short fingerprint of a record as the API sent it, kept in state to tell whether it
    changed since it was last loaded."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def prune(seen: dict[str, str], *, keep_days: float) -> None:
    """Forget follow-ups older than the listing's lookback can offer again, so state stays small."""
    stamps = [v for v in seen.values() if v]
    if not stamps:
        return
    horizon = iso(max(parse_ts(v) for v in stamps) - timedelta(days=keep_days))  # type: ignore[type-var]
    for key in [k for k, v in seen.items() if v and v < horizon]:
        del seen[key]


# -- state written by earlier versions -----------------------------------------------------------

# Before the many-merchants engine, every merchant had its own dlt pipeline
# (`instamojo_<merchant>`) whose resources kept their cursors with `dlt.sources.incremental`.
# resource → (family, where its incremental cursor was, the state key it kept beside it)
_LEGACY_RESOURCES: dict[str, tuple[str, str | None, str | None]] = {
    "payments": ("payments", "created_at", None),
    "payouts": ("payouts", "paid_out_at", None),
    "payout_payments": ("payouts", None, "followed_up"),
    "products": ("products", "created_at", None),
    "product_covers": ("products", None, "covers_read"),
    "orders_listing": ("orders", "created_at", None),
    "pending_orders": ("orders", None, "watch"),
}


def from_legacy_pipeline_state(pipeline_state: Mapping[str, Any]) -> MerchantState | None:
    """The state of a per-merchant pipeline of an earlier version, in today's layout (None when
    it holds nothing of the source)."""
    resources = ((pipeline_state.get("sources") or {}).get("instamojo") or {}).get("resources") or {}
    if not resources:
        return None
    state = new_state()
    for resource, (family, cursor_path, kept) in _LEGACY_RESOURCES.items():
        found = resources.get(resource) or {}
        if cursor_path is not None:
            last = ((found.get("incremental") or {}).get(cursor_path) or {}).get("last_value")
            if last is not None:
                state[family]["cursor"] = iso(parse_ts(last))  # type: ignore[arg-type]
        if kept is not None and isinstance(found.get(kept), dict):
            state[family][kept] = dict(found[kept])
    state["updated_at"] = ""  # older than anything the engine committed
    return state
