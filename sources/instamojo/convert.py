"""API records → typed Arrow tables, one batch at a time.

Why Arrow and not dicts: dlt's normalizer walks every dict in Python; a resource that yields Arrow
tables skips normalize altogether and loads through parquet, which DESIGN.md measured at ~10×
the throughput. The price is that typing happens here, so this module is where money becomes
DECIMAL(18,2) (parsed from the API's strings, never through float), timestamps become UTC, URL
references get their plain ids, and unusable values are caught with the merchant, endpoint,
record id and field named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .errors import RecordError
from .schema import MONEY_PRECISION, MONEY_SCALE, Column, Table

log = logging.getLogger(__name__)

MONEY_TYPE = pa.decimal128(MONEY_PRECISION, MONEY_SCALE)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
# A money string the API may send: optional sign, up to 16 integer digits, up to 2 decimals.
_MONEY_PATTERN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
# The last path segment of a URL reference (`…/v2/payouts/MOJO123/` → `MOJO123`); a bare id
# has no slash and is left as it is.
_LAST_SEGMENT = r"^.*/([^/]+)/?$"


@dataclass
class ConversionNotes:
    """What a batch conversion noticed that the run summary should mention."""

    unknown_fields: set[str] = field(default_factory=set)
    non_numeric_money: list[tuple[object, str, str]] = field(default_factory=list)  # (id, field, text)


class ArrowConverter:
    """Converts lists of flat API records for one table into Arrow tables typed by `table`.

    `merchant` and `synced_at` fill the common columns. `id_field` names the record field quoted
    in error messages.
    """

    def __init__(
        self,
        table: Table,
        *,
        merchant: str,
        endpoint: str,
        synced_at: datetime,
        id_field: str = "id",
        ignored_fields: Iterable[str] = (),
    ) -> None:
        self.table = table
        self.merchant = merchant
        self.endpoint = endpoint
        self.synced_at = synced_at
        self.id_field = id_field
        self.notes = ConversionNotes()
        self._data_columns = [c for c in table.columns if c.name not in ("merchant", "_synced_at")]
        self._known = {c.api_field for c in self._data_columns if c.id_of is None} | set(ignored_fields)
        self._warned_fields: set[str] = set()
        self._not_null = {c.name for c in table.columns if not c.nullable} | set(table.primary_key)

    def convert(self, records: list[dict[str, Any]]) -> pa.Table:
        """One Arrow table for `records` (which must be non-empty)."""
        n = len(records)
        arrays: dict[str, pa.Array] = {}
        converted: dict[str, pa.Array] = {}
        variants: dict[str, pa.Array] = {}
        for col in self._data_columns:
            if col.id_of is not None:
                continue
            key = col.api_field
            values = [r.get(key) for r in records]
            if col.kind == "money":
                converted[col.api_field] = self._money(col, values, records, variants)
            else:
                converted[col.api_field] = self._convert_column(col, values, records)
        for col in self._data_columns:
            if col.id_of is not None:
                arrays[col.name] = _last_segment(converted[col.id_of])
            else:
                arrays[col.name] = converted[col.api_field]
        columns: dict[str, pa.Array] = {"merchant": pa.array([self.merchant] * n, pa.string())}
        columns.update(arrays)
        columns.update(variants)
        columns.update(self._unknown_columns(records))
        columns["_synced_at"] = pa.array([self.synced_at] * n, TIMESTAMP_TYPE)
        # nullability as declared (keys are NOT NULL), so dlt sees the same schema it was given
        fields = [pa.field(name, arr.type, nullable=name not in self._not_null) for name, arr in columns.items()]
        return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))

    # -- columns by kind -------------------------------------------------------------------------

    def _convert_column(self, col: Column, values: list[Any], records: list[dict]) -> pa.Array:
        kind = col.kind
        if kind == "json":
            return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())
        try:
            if kind == "text":
                return pa.array(values, pa.string())
            if kind == "bool":
                return pa.array(values, pa.bool_())
            if kind == "bigint":
                return pa.array(values, pa.int64())
            if kind == "timestamp":
                if any(isinstance(v, datetime) for v in values):
                    return pa.array(values, TIMESTAMP_TYPE)  # already parsed (e.g. order cursors)
                return pa.array(values, pa.string()).cast(TIMESTAMP_TYPE)
            if kind == "date":
                return pa.array(values, pa.string()).cast(pa.date32())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if kind == "text":
                # a scalar where text was expected (e.g. a number): keep its JSON text
                return pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values])
            raise self._record_error(col, values, records, kind, exc) from None
        raise AssertionError(f"unknown column kind {kind}")

    def _money(
        self, col: Column, values: list[Any], records: list[dict], variants: dict[str, pa.Array]
    ) -> pa.Array:
        # Amounts are 2-decimal strings ("9494.00"); a JSON number would have been parsed as a
        # float by the JSON decoder, so it is turned back into its shortest decimal text, which
        # for a 2-place amount is exact.
        try:
            text = pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            text = pa.array([_money_text(v) for v in values], pa.string())
        valid = pc.match_substring_regex(text, _MONEY_PATTERN)
        if pc.all(pc.or_kleene(valid, pc.is_null(text))).as_py() is not False:
            return text.cast(MONEY_TYPE)
        # Some values are not 2-place numbers: load them as NULL and keep the text next to them
        # in `<column>__v_text` (dlt's variant-column convention), so nothing is lost and the
        # checks fail naming the record.
        bad = pc.and_(pc.invert(valid), pc.is_valid(text)).to_pylist()
        for i, is_bad in enumerate(bad):
            if is_bad:
                record_id = records[i].get(self.id_field)
                self.notes.non_numeric_money.append((record_id, col.name, values[i]))
                log.warning(
                    "merchant %r, endpoint %s, record %r, field %r: %r is not an amount with at most "
                    "2 decimals; loaded as NULL, text kept in %s__v_text",
                    self.merchant, self.endpoint, record_id, col.name, values[i], col.name,
                )
        mask = pa.array(bad)
        variants[f"{col.name}__v_text"] = pc.if_else(mask, text, pa.scalar(None, pa.string()))
        return pc.if_else(mask, pa.scalar(None, pa.string()), text).cast(MONEY_TYPE)

    def _unknown_columns(self, records: list[dict]) -> dict[str, pa.Array]:
        """Fields the schema does not know become extra text columns (schema evolution), with a
        warning once per field, so a new API field is neither lost nor silently typed."""
        known = self._known
        unknown: set[str] = set()
        for r in records:
            if not r.keys() <= known:
                unknown.update(r.keys() - known)
        if not unknown:
            return {}
        extra: dict[str, pa.Array] = {}
        for name in sorted(unknown):
            if name not in self._warned_fields:
                self._warned_fields.add(name)
                self.notes.unknown_fields.add(name)
                log.warning(
                    "merchant %r, endpoint %s: unknown field %r kept as a text column",
                    self.merchant, self.endpoint, name,
                )
            values = [r.get(name) for r in records]
            extra[_safe_column_name(name)] = pa.array(
                [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values], pa.string()
            )
        return extra

    def _record_error(self, col: Column, values: list[Any], records: list[dict], kind: str, exc: Exception) -> RecordError:
        """Find the first offending value, so the error names its record and field."""
        for i, value in enumerate(values):
            try:
                if kind == "timestamp":
                    pa.array([value], pa.string()).cast(TIMESTAMP_TYPE)
                elif kind == "date":
                    pa.array([value], pa.string()).cast(pa.date32())
                elif kind == "bool":
                    pa.array([value], pa.bool_())
                elif kind == "bigint":
                    pa.array([value], pa.int64())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return RecordError(
                    f"{value!r} is not a valid {kind}",
                    merchant=self.merchant,
                    endpoint=self.endpoint,
                    record_id=records[i].get(self.id_field),
                    field=col.api_field,
                )
        return RecordError(str(exc), merchant=self.merchant, endpoint=self.endpoint, record_id=None, field=col.api_field)


def _money_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    # A JSON number was already parsed as a float by the JSON decoder; its shortest repr is the
    # exact decimal text for any 2-place amount, so no precision is lost going back to Decimal.
    return repr(value) if isinstance(value, float) else str(value)


def _last_segment(urls: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(urls, _LAST_SEGMENT, r"\1")


def _safe_column_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.lower())
