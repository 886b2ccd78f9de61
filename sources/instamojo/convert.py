"""API records → typed Arrow tables, a batch of pages at a time.

Why Arrow and not dicts: dlt's normalizer walks every dict in Python; a resource that yields Arrow
tables skips normalize altogether and loads through parquet (about ten times the throughput of
dicts through the normalizer, measured on this project's benchmark; docs/sync.md). The price is that typing happens here, so this module is where money becomes
DECIMAL(18,2) (parsed from the API's strings, never through float), timestamps become UTC, URL
references get their plain ids, and unusable values are caught with the merchant, endpoint,
record id and field named.

Two parsers feed one typing step:

- fast: the raw bodies of a batch of pages, one page per line, parsed by Arrow's C++ JSON reader
  against the schema the API documents (no Python object per record at all);
- robust: the pages' records as Python dicts, each value coerced to its documented JSON type
  (a number where text was expected becomes its text, and so on) and handed to Arrow.

A batch the fast parser cannot take as it is (a value of an unexpected JSON type) goes through the
robust one; both produce the same table (tests hold them to it).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from .errors import ApiError, RecordError
from .schema import MONEY_PRECISION, MONEY_SCALE, Column, Table

log = logging.getLogger(__name__)

MONEY_TYPE = pa.decimal128(MONEY_PRECISION, MONEY_SCALE)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
# A money string the API may send: optional sign, up to 16 integer digits, up to 2 decimals.
_MONEY_PATTERN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
# The last path segment of a URL reference (`…/v2/payouts/MOJO123/` → `MOJO123`); a bare id
# has no slash and is left as it is.
_LAST_SEGMENT = r"^.*/([^/]+)/?$"
_COMMON = ("merchant", "_synced_at")
# How each column kind travels in the API's JSON (json columns: whatever the API sends).
_JSON_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "money": pa.string(),
    "timestamp": pa.string(),
    "date": pa.string(),
    "bool": pa.bool_(),
    "bigint": pa.int64(),
}


@dataclass
class ConversionNotes:
    """What conversions noticed that the run summary should mention."""

    unknown_fields: set[str] = field(default_factory=set)
    non_numeric_money: list[tuple[object, str, str]] = field(default_factory=list)  # (id, field, text)
    fallback_batches: int = 0


class ArrowConverter:
    """Converts records of one endpoint into Arrow tables typed by `table`.

    `merchant` and `synced_at` fill the common columns; `id_field` names the record field quoted
    in error messages. `nested` declares list fields kept as they are (Arrow list<struct>) for a
    later split into child tables; `derived` names columns that are not in the API's records but
    are added by the caller before typing (e.g. a child row's order_id).
    """

    def __init__(
        self,
        table: Table,
        *,
        merchant: str,
        endpoint: str,
        synced_at: datetime,
        id_field: str = "id",
        nested: dict[str, pa.DataType] | None = None,
        derived: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.merchant = merchant
        self.endpoint = endpoint
        self.synced_at = synced_at
        self.id_field = id_field
        self.nested = dict(nested or {})
        self.derived = set(derived)
        self.notes = ConversionNotes()
        self._columns = [c for c in table.columns if c.name not in _COMMON]
        self._money_columns = [c for c in self._columns if c.kind == "money" and c.id_of is None]
        self._not_null = {c.name for c in table.columns if not c.nullable} | set(table.primary_key)
        self.record_schema = self._record_schema()
        self._json_fields = [c.api_field for c in self._columns if c.kind == "json"]
        self._known = set(self.record_schema.names) | set(self._json_fields) | self.derived
        self._warned: set[str] = set()

    def _record_schema(self) -> pa.Schema:
        """The documented JSON shape of one record: what the fast parser is told to expect."""
        fields: dict[str, pa.DataType] = {}
        structs: dict[str, list[tuple[str, pa.DataType]]] = {}
        for col in self._columns:
            if col.id_of is not None or col.name in self.derived or col.kind == "json":
                continue
            top, _, child = col.api_field.partition(".")
            if child:  # e.g. failure.reason: a field of an object
                structs.setdefault(top, []).append((child, _JSON_TYPES[col.kind]))
            else:
                fields[top] = _JSON_TYPES[col.kind]
        fields.update({name: pa.struct(children) for name, children in structs.items()})
        fields.update(self.nested)
        return pa.schema(list(fields.items()))

    # -- the two parsers -------------------------------------------------------------------------

    def convert_pages(
        self,
        bodies: list[bytes],
        envelope_key: str,
        urls: Sequence[str] | None = None,
        refetch: Callable[[str], bytes] | None = None,
    ) -> pa.Table:
        """One table from the raw bodies of list pages (each a JSON object holding `envelope_key`);
        `urls` name the pages in errors; `refetch(url)` fetches a page again when its body turns
        out cut off (it raises if the page stays malformed)."""
        page_schema = pa.schema([
            (envelope_key, pa.list_(pa.struct(list(self.record_schema)))),
            ("success", pa.bool_()),
        ])
        lines = [b if b.find(b"\n") < 0 else orjson.dumps(orjson.loads(b)) for b in bodies]
        block = max(1 << 20, max(len(b) for b in lines) + 1)
        data = b"\n".join(lines)
        try:
            pages = pa_json.read_json(
                io.BytesIO(data),
                # threads only pay for themselves on large batches (a page or two is parsed faster alone)
                read_options=pa_json.ReadOptions(block_size=block, use_threads=len(data) > 1 << 20),
                # a field outside the documented shape is inferred and becomes a text column
                parse_options=pa_json.ParseOptions(explicit_schema=page_schema, unexpected_field_behavior="infer"),
            )
        except pa.ArrowInvalid:  # a value of another JSON type than documented, or a broken page
            return self._robust(bodies, envelope_key, urls, refetch)
        if envelope_key not in pages.column_names or pages.num_rows != len(bodies):
            return self._robust(bodies, envelope_key, urls, refetch)  # the robust parser names what is missing
        if pc.any(pc.equal(pages.column("success"), False)).as_py():
            return self._robust(bodies, envelope_key, urls, refetch)  # names the page and its message
        records = pc.list_flatten(pages.column(envelope_key))
        if len(records) == 0:
            return self.typed(self.record_schema.empty_table())
        return self.typed(pa.Table.from_struct_array(records))

    def convert(self, records: list[dict[str, Any]]) -> pa.Table:
        """One table from records already parsed into dicts."""
        return self.typed(self.raw_from_dicts(records), json_as_text=True)

    def _robust(self, bodies: list[bytes], envelope_key: str, urls: Sequence[str] | None,
                refetch: Callable[[str], bytes] | None = None) -> pa.Table:
        from .client import check_success

        self.notes.fallback_batches += 1
        records: list[dict[str, Any]] = []
        for i, body in enumerate(bodies):
            where = _describe_page(urls[i]) if urls else f"page {i + 1} of the batch"
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if refetch is None or not urls:
                    raise ApiError(f"malformed JSON from {where} ({exc}); nothing from this listing was committed "
                                   "and its cursor is unchanged, so the next run retries it",
                                   merchant=self.merchant, endpoint=self.endpoint) from None
                doc = orjson.loads(refetch(urls[i]))  # cut off on the way: fetched again (raises if it stays so)
            if isinstance(doc, dict):
                check_success(doc, urls[i] if urls else None, merchant=self.merchant, endpoint=self.endpoint)
            page = doc.get(envelope_key) if isinstance(doc, dict) else None
            if not isinstance(page, list):
                raise ApiError(f"{where} has no {envelope_key!r} list; nothing from this listing was committed "
                               "and its cursor is unchanged", merchant=self.merchant, endpoint=self.endpoint)
            records.extend(page)
        return self.convert(records)

    def raw_from_dicts(self, records: list[dict[str, Any]]) -> pa.Table:
        """Records as an Arrow table of their documented JSON types (untyped money, timestamps)."""
        schema = self.record_schema
        unknown: set[str] = set()
        for r in records:
            if not r.keys() <= self._known:
                unknown.update(r.keys() - self._known)
        coerce = [(f.name, f.type) for f in schema if pa.types.is_string(f.type) or pa.types.is_struct(f.type)]
        rows = []
        for r in records:
            row = dict(r)
            for name, typ in coerce:
                value = row.get(name)
                if value is not None:
                    row[name] = _coerce(value, typ)
            for name in unknown:
                value = row.get(name)
                if value is not None and not isinstance(value, str):
                    row[name] = orjson.dumps(value).decode()
            rows.append(row)
        full = pa.schema(list(schema) + [pa.field(n, pa.string()) for n in sorted(unknown)])
        try:
            raw = pa.Table.from_pylist(rows, schema=full)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise self._find_bad_value(rows, full) from None
        for name in self._json_fields:  # free-form JSON: carried as its text
            raw = raw.append_column(name, _json_text([r.get(name) for r in records]))
        return raw

    # -- typing ------------------------------------------------------------------------------------

    def typed(self, raw: pa.Table, json_as_text: bool = False) -> pa.Table:
        """The typed table for `raw` (columns named as the API names its fields). `json_as_text`:
        the free-form JSON columns of `raw` already hold JSON text (the dict parser's output)."""
        n = raw.num_rows
        raw = raw.combine_chunks()  # one chunk per column: every step below reads it as it is
        columns: dict[str, pa.Array] = {"merchant": pa.array([self.merchant] * n, pa.string())}
        variants: dict[str, pa.Array] = {}
        money_ok = self._all_money_valid(raw)
        for col in self._columns:
            if col.id_of is not None:
                columns[col.name] = pc.replace_substring_regex(_column(raw, col.id_of), _LAST_SEGMENT, r"\1")
                continue
            values = _column(raw, col.api_field) if col.name not in self.derived else _column(raw, col.name)
            if col.kind == "money":
                columns[col.name] = (_combined(values).cast(MONEY_TYPE) if money_ok
                                     else self._money(col, values, raw, variants))
            elif col.kind in ("timestamp", "date"):
                columns[col.name] = self._time(col, values, raw)
            elif col.kind == "json":
                columns[col.name] = _combined(values) if json_as_text else _json_text(values)
            elif col.kind == "text" and not pa.types.is_string(values.type):
                columns[col.name] = _json_text(values)
            else:
                columns[col.name] = values
        columns.update(variants)
        columns.update(self._unknown_columns(raw))
        for name in self.nested:
            columns[name] = _column(raw, name)
        columns["_synced_at"] = pa.array([self.synced_at] * n, TIMESTAMP_TYPE)
        # nullability as declared (keys are NOT NULL), so dlt sees the same schema it was given
        fields = [pa.field(name, arr.type, nullable=name not in self._not_null) for name, arr in columns.items()]
        return pa.Table.from_arrays([_combined(a) for a in columns.values()], schema=pa.schema(fields))

    def _all_money_valid(self, raw: pa.Table) -> bool:
        """Whether every money value of `raw` is an amount with at most two decimals (or NULL),
        judged in one pass over all money columns (a call per column costs more than the work
        on a small batch)."""
        texts = [_combined(_column(raw, c.api_field if c.name not in self.derived else c.name))
                 for c in self._money_columns]
        texts = [t for t in texts if len(t) and t.null_count < len(t)]
        if not texts:
            return True
        if any(not pa.types.is_string(t.type) for t in texts):
            return False
        every = pa.concat_arrays(texts)
        return pc.all(pc.match_substring_regex(every.drop_null(), _MONEY_PATTERN)).as_py() is not False

    def _money(self, col: Column, text: pa.Array, raw: pa.Table, variants: dict[str, pa.Array]) -> pa.Array:
        text = _combined(text)
        valid = pc.match_substring_regex(text, _MONEY_PATTERN)
        if pc.all(pc.or_kleene(valid, pc.is_null(text))).as_py() is not False:
            return text.cast(MONEY_TYPE)
        # Some values are not 2-place numbers: load them as NULL and keep the text next to them
        # in `<column>__v_text` (dlt's variant-column convention), so nothing is lost and the
        # checks fail naming the record.
        bad = pc.and_(pc.invert(valid), pc.is_valid(text))
        ids = _column(raw, self.id_field).to_pylist() if self.id_field in raw.column_names else [None] * len(text)
        for i in pc.indices_nonzero(bad).to_pylist():
            value = text[i].as_py()
            self.notes.non_numeric_money.append((ids[i], col.name, value))
            log.warning(
                "merchant %r, endpoint %s, record %r, field %r: %r is not an amount with at most "
                "2 decimals; loaded as NULL, text kept in %s__v_text",
                self.merchant, self.endpoint, ids[i], col.name, value, col.name,
            )
        variants[f"{col.name}__v_text"] = pc.if_else(bad, text, pa.scalar(None, pa.string()))
        return pc.if_else(bad, pa.scalar(None, pa.string()), text).cast(MONEY_TYPE)

    def _time(self, col: Column, values: pa.Array, raw: pa.Table) -> pa.Array:
        target = TIMESTAMP_TYPE if col.kind == "timestamp" else pa.date32()
        if values.type == target:
            return values
        try:
            return _combined(values).cast(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            for i, value in enumerate(values.to_pylist()):
                try:
                    pa.array([value], pa.string()).cast(target)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise self._record_error(raw, i, col.api_field, f"{value!r} is not a valid {col.kind}") from None
            raise

    def _unknown_columns(self, raw: pa.Table) -> dict[str, pa.Array]:
        """Fields the schema does not know become text columns (schema evolution), with a warning
        once per field, so a new API field is neither lost nor silently typed."""
        extra: dict[str, pa.Array] = {}
        for name in raw.column_names:
            if name in self._known:
                continue
            if name not in self._warned:
                self._warned.add(name)
                self.notes.unknown_fields.add(name)
                log.warning("merchant %r, endpoint %s: unknown field %r kept as a text column",
                            self.merchant, self.endpoint, name)
            values = _column(raw, name)
            extra[_safe_column_name(name)] = values if pa.types.is_string(values.type) else _json_text(values)
        return extra

    # -- errors ------------------------------------------------------------------------------------

    def _record_error(self, raw: pa.Table, index: int, field_name: str, message: str) -> RecordError:
        record_id = _column(raw, self.id_field)[index].as_py() if self.id_field in raw.column_names else None
        return RecordError(message, merchant=self.merchant, endpoint=self.endpoint, record_id=record_id, field=field_name)

    def _find_bad_value(self, rows: list[dict], schema: pa.Schema) -> RecordError:
        """Which record and field Arrow refused, so the error can name them."""
        for f in schema:
            values = [r.get(f.name) for r in rows]
            try:
                pa.array(values, f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                for i, value in enumerate(values):
                    try:
                        pa.array([value], f.type)
                    except (pa.ArrowInvalid, pa.ArrowTypeError):
                        kind = {pa.bool_(): "boolean", pa.int64(): "integer"}.get(f.type, str(f.type))
                        return RecordError(f"{value!r} is not a valid {kind}", merchant=self.merchant,
                                           endpoint=self.endpoint, record_id=rows[i].get(self.id_field), field=f.name)
        return RecordError("a value does not match the documented type", merchant=self.merchant,
                           endpoint=self.endpoint, record_id=None, field="?")


def _coerce(value: Any, typ: pa.DataType) -> Any:
    """A value as its documented JSON type, when the API sent another."""
    if pa.types.is_struct(typ):
        if isinstance(value, dict):
            return {f.name: _coerce(value[f.name], f.type) if value.get(f.name) is not None else None for f in typ}
        # e.g. `failure` sent as a bare reason string instead of {"reason", "message"}
        return {typ[0].name: _coerce(value, typ[0].type)}
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        # A JSON number was already parsed as a float; its shortest repr is the exact decimal
        # text of any 2-place amount, so money does not go through binary float error.
        return repr(value)
    return orjson.dumps(value).decode()  # a number, boolean, list or object: its JSON text


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    """A column by API field name; `parent.child` reads a field of an object; absent → NULLs."""
    index = table.schema.get_field_index(name)  # a lookup, not a list of every column name
    if index >= 0:
        return table.column(index)
    parent, _, child = name.partition(".")
    if child and table.schema.get_field_index(parent) >= 0:
        parent_values = _combined(table.column(parent))
        if pa.types.is_struct(parent_values.type) and parent_values.type.get_field_index(child) >= 0:
            return pc.struct_field(parent_values, child)
    return pa.nulls(table.num_rows, pa.string())


def _combined(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def _json_text(values: pa.ChunkedArray | pa.Array | list[Any]) -> pa.Array:
    """JSON text of each value (lists, objects, numbers), NULL stays NULL."""
    items = values if isinstance(values, list) else values.to_pylist()
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in items], pa.string())


def _describe_page(url: str) -> str:
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    page = dict(parse_qsl(parts.query)).get("page")
    return parts.path + (f" page {page}" if page else "")


def _safe_column_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.lower())
