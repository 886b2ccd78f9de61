"""The sandbox's state: every merchant's records as served, their indexes, the clock, and the
ground truth.

Each served record is a :class:`Rec` holding its JSON bytes, serialized once with orjson and
re-serialized only when its visible state changes (a pending payment resolves, a payment is paid
out, an order is paid, ...). A list page is then a bytes join of 100 pre-serialized records.

Records of one endpoint live in a :class:`Collection`, kept sorted by (created_at, id) (by
paid_out_at for payouts), with dict indexes for the equality filters, so that no request scans
the whole dataset.

Time: ``now`` is the sandbox clock (int microseconds, UTC). It only moves when told to
(:meth:`Store.advance_to`). Future state changes wait in a heap of (instant, model).
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import heapq
import itertools
import os
import pickle
import selectors
import threading
import zlib
from array import array
from collections import defaultdict
from dataclasses import dataclass
from operator import attrgetter

import orjson

from .config import SandboxConfig
from .generator import MerchantGenerator, build_merchants, ist_day_of
from .models import MerchantCtx
from .timeutil import US, iso, to_us

LIST_ENDPOINTS = ("payments", "payouts", "products", "orders")
#: datasets with at least this many records are moved out of the garbage collector's sight
FREEZE_THRESHOLD = 200_000
#: datasets expected to hold at least this many payments are built by forked workers by default
PARALLEL_BUILD_MIN_PAYMENTS = 100_000
TRUTH_ENDPOINTS = LIST_ENDPOINTS + ("product_covers", "user_info", "user_contact")

_KEY = attrgetter("key")


def dumps(obj) -> bytes:
    """orjson.dumps, copied into an exactly-sized bytes object.

    orjson returns its working buffer, whose capacity can be ten times the JSON's length; the
    store keeps millions of these, so each is copied once into a tight object.
    """
    return memoryview(orjson.dumps(obj)).tobytes()


def _sort_key(rec: Rec):
    return (rec.key, rec.id)


class Rec:
    """One served record: sort key, id, JSON bytes, the live model (None once final), filter tag."""

    __slots__ = ("id", "json", "key", "model", "tag")

    def __init__(self, key: int, rid: str, model=None):
        self.key = key
        self.id = rid
        self.json = b""
        self.model = model
        self.tag = None

    def __reduce__(self):
        # While a merchant is packed (pack_merchant), a final record travels as its position
        # in the columns; otherwise as a compact pickle, its model in the state (a model refers
        # back to its record, and only the state is pickled after the record is memoized).
        columns = getattr(_packing, "final", None)
        if columns is not None:
            where = columns.get(id(self))
            if where is not None:
                return _column_rec, where
        return Rec, (self.key, self.id), (self.json, self.model, self.tag)

    def __setstate__(self, state) -> None:
        self.json, self.model, self.tag = state


@dataclass(frozen=True)
class Pred:
    """One filter condition, already parsed.

    kind: ``index`` (value in the named index), ``id``, ``key_gt``/``key_lt``/``key_ge``/
    ``key_le`` (on the sort key, microseconds), ``tag`` (the record's tag equals value),
    ``none`` (matches nothing, e.g. a seller that is not this merchant).
    """

    kind: str
    name: str = ""
    value: object = None


class Collection:
    """The records of one endpoint of one merchant, sorted, indexed, with cached query results."""

    def __init__(self, name: str, tag_index: str | None = None):
        self.name = name
        self.records: list[Rec] = []
        self.by_id: dict[str, Rec] = {}
        self.indexes: dict[str, dict[object, list[Rec]]] = defaultdict(dict)
        self.tag_index = tag_index
        #: anomaly patches, re-applied whenever a record is re-rendered: id → {field: value}
        self.patches: dict[str, dict] = {}
        #: anomaly: ids served twice in a row (so the repeat opens the next page)
        self.duplicates: list[str] = []
        self.version = 0
        self._cache: dict = {}
        self._cache_version = -1

    def __len__(self) -> int:
        return len(self.records)

    def add_index(self, name: str, value, rec: Rec) -> None:
        """Add ``rec`` to index ``name`` under ``value``."""
        self.indexes[name].setdefault(value, []).append(rec)

    def remove_index(self, name: str, value, rec: Rec) -> None:
        """Remove ``rec`` from index ``name`` under ``value``."""
        bucket = self.indexes[name].get(value)
        if bucket is not None:
            try:
                bucket.remove(rec)
            except ValueError:
                pass

    def insert_batch(self, recs: list[Rec]) -> None:
        """Insert records (any order) keeping ``records`` sorted by (key, id)."""
        if not recs:
            return
        recs.sort(key=_sort_key)
        if not self.records or _sort_key(self.records[-1]) <= _sort_key(recs[0]):
            self.records.extend(recs)
        else:
            for rec in recs:
                bisect.insort(self.records, rec, key=_sort_key)
        self.version += 1

    def served(self, preds: tuple[Pred, ...], order: str) -> list[Rec]:
        """The records matching ``preds`` in served order (cached until the collection changes)."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        cache_key = (preds, order)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        result = self._select(preds)
        if order == "newest_first":
            result = result[::-1]
        elif order == "unordered":
            # a fixed shuffle: order by a checksum of the id (stable across processes and versions)
            result = sorted(result, key=lambda r: (zlib.crc32(r.id.encode()), r.id))
        if self.duplicates:
            result = list(result)
            for rid in self.duplicates:
                rec = self.by_id.get(rid)
                if rec is None:
                    continue
                for i, candidate in enumerate(result):
                    if candidate is rec:
                        result.insert(i + 1, rec)
                        break
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    def _select(self, preds: tuple[Pred, ...]) -> list[Rec]:
        """Matching records, ascending by (key, id)."""
        cands: list[Rec] | None = None
        needs_sort = False
        for p in preds:
            if p.kind == "none":
                return []
        lookups = []
        for p in preds:
            if p.kind == "id":
                rec = self.by_id.get(p.value) if isinstance(p.value, str) else None
                lookups.append([rec] if rec is not None else [])
            elif p.kind == "index":
                lookups.append(self.indexes[p.name].get(p.value, []))
        if lookups:
            lookups.sort(key=len)
            cands = list(lookups[0])
            for other in lookups[1:]:
                members = {id(r) for r in other}
                cands = [r for r in cands if id(r) in members]
            needs_sort = True
        for p in preds:
            if p.kind.startswith("key_"):
                v = p.value
                if not isinstance(v, int):
                    raise TypeError(f"a {p.kind} filter compares sort keys (int microseconds), not {v!r}")
                if cands is None:
                    records = self.records
                    if p.kind == "key_gt":
                        cands = records[bisect.bisect_right(records, v, key=_KEY):]
                    elif p.kind == "key_ge":
                        cands = records[bisect.bisect_left(records, v, key=_KEY):]
                    elif p.kind == "key_lt":
                        cands = records[: bisect.bisect_left(records, v, key=_KEY)]
                    else:
                        cands = records[: bisect.bisect_right(records, v, key=_KEY)]
                else:
                    if p.kind == "key_gt":
                        cands = [r for r in cands if r.key > v]
                    elif p.kind == "key_ge":
                        cands = [r for r in cands if r.key >= v]
                    elif p.kind == "key_lt":
                        cands = [r for r in cands if r.key < v]
                    else:
                        cands = [r for r in cands if r.key <= v]
            elif p.kind == "tag":
                source = self.records if cands is None else cands
                cands = [r for r in source if r.tag == p.value]
        if cands is None:
            return self.records
        if needs_sort:
            cands.sort(key=_sort_key)
        return cands


class MerchantState:
    """One merchant: identity, generator, collections, covers."""

    def __init__(self, ctx: MerchantCtx, gen: MerchantGenerator | None = None):
        self.ctx = ctx
        self.gen: MerchantGenerator = gen  # type: ignore[assignment]  # set by Store._build_merchant
        self.colls = {
            "payments": Collection("payments", tag_index="payout"),
            "payouts": Collection("payouts"),
            "products": Collection("products"),
            "orders": Collection("orders"),
        }
        #: product slug → its covers (a Collection sorted by position)
        self.covers: dict[str, Collection] = {}
        self.user_info = dumps(ctx.user_info())
        self.user_contact = dumps(ctx.user_contact())

    @property
    def username(self) -> str:
        return self.ctx.username


# Moving a built merchant between processes ----------------------------------------------------
# Most of a built merchant is final records: a sort key, an id, JSON bytes and a filter tag, no
# model. Pickled one object at a time they cost more to send and receive than to build, so they
# travel as columns (one array of keys, one string of ids, one blob of JSON), and only what is
# still alive (the generator, models with changes to come, their records, pending changes)
# goes through pickle; a final record that a live object refers to (a payout a payment shows)
# is sent as a reference to its column position (Rec.__reduce__), so it arrives as the very
# same object.


#: per thread: the final records of the merchant being packed (id → (collection, position))
#: or unpacked ("records": collection → list of records)
_packing = threading.local()


def _column_rec(name: str, position: int) -> Rec:
    return _packing.records[name][position]


def pack_merchant(index: int, state: MerchantState, heap: list) -> bytes:
    """A built merchant (and its pending changes) as bytes for :func:`unpack_merchant`."""
    columns = {}
    final: dict[int, tuple[str, int]] = {}
    live: dict[str, list[tuple[int, Rec]]] = {}
    for name, coll in state.colls.items():
        recs = coll.records
        position = {id(r): k for k, r in enumerate(recs)}
        for k, rec in enumerate(recs):
            if rec.model is None:
                final[id(rec)] = (name, k)
        live[name] = [(k, rec) for k, rec in enumerate(recs) if rec.model is not None]
        indexes = {index_name: [(value, array("l", [position[id(r)] for r in bucket])) for value, bucket in idx.items()]
                   for index_name, idx in coll.indexes.items()}
        columns[name] = (array("q", [r.key for r in recs]).tobytes(), "\x00".join(r.id for r in recs),
                         b"".join(r.json for r in recs), array("q", [len(r.json) for r in recs]).tobytes(),
                         [r.tag for r in recs], indexes)
    head = pickle.dumps((index, columns), protocol=pickle.HIGHEST_PROTOCOL)
    _packing.final = final
    try:
        body = pickle.dumps((state.ctx, state.gen, state.covers, state.user_info, state.user_contact, live, heap),
                            protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        _packing.final = None
    return len(head).to_bytes(8, "little") + head + body


def unpack_merchant(blob) -> tuple[int, MerchantState, list]:
    """(index, merchant, pending changes) from :func:`pack_merchant`'s bytes."""
    size = int.from_bytes(blob[:8], "little")
    index, columns = pickle.loads(blob[8:8 + size])
    records: dict[str, list[Rec]] = {}
    for name, (keys, ids, jsons, lengths, tags, _indexes) in columns.items():
        key_list = array("q")
        key_list.frombytes(keys)
        length_list = array("q")
        length_list.frombytes(lengths)
        id_list = ids.split("\x00") if key_list else []
        recs = []
        start = 0
        for key, rid, length, tag in zip(key_list, id_list, length_list, tags, strict=True):
            rec = Rec(key, rid)
            rec.json = jsons[start:start + length]
            rec.tag = tag
            start += length
            recs.append(rec)
        records[name] = recs
    _packing.records = records
    try:
        ctx, gen, covers, user_info, user_contact, live, heap = pickle.loads(blob[8 + size:])
    finally:
        _packing.records = None
    state = MerchantState(ctx, gen)
    state.covers, state.user_info, state.user_contact = covers, user_info, user_contact
    for name, coll in state.colls.items():
        recs = records[name]
        for k, rec in live[name]:
            recs[k] = rec
        coll.records = recs
        coll.by_id = {r.id: r for r in recs}
        for index_name, buckets in columns[name][5].items():
            target = coll.indexes[index_name]
            for value, positions in buckets:
                target[value] = [recs[k] for k in positions]
        coll.version += 1
    return index, state, heap


class Store:
    """All merchants' data and the clock. Thread-safe through ``lock`` (an RLock)."""

    def __init__(self, config: SandboxConfig, base_url: str):
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.now = to_us(config.initial_now)
        self._target = self.now
        self._heap: list = []
        self._seq = itertools.count()
        self._dirty: list = []
        self._bulk = False
        self.frozen = False
        now_day = ist_day_of(self.now)
        self._first_day = now_day - dt.timedelta(days=config.n_days)
        self._last_history_day = now_day - dt.timedelta(days=1)
        #: every merchant, in order; each gets its generator when it is built (_build_merchant)
        self.states: list[MerchantState] = [MerchantState(ctx) for ctx in build_merchants(config, self.base_url)]
        self._bulk_build(self._first_day, now_day)
        # after the build: a build worker sends back a merchant as a new object
        self.by_name = {s.username: s for s in self.states}
        self.by_account = {s.ctx.account_id: s for s in self.states}

    # Sink interface (called by the generators) ---------------------------------------------
    def add(self, model, *changes: int | None) -> None:
        """A new model: it becomes visible at its key (created_at, paid_out_at) and changes at
        each of ``changes`` (None entries are ignored)."""
        model.rec = None
        target = self._target
        if model.key <= target:
            model.dirty = True
            self._dirty.append(model)
        else:
            model.dirty = False
            heapq.heappush(self._heap, (model.key, next(self._seq), model))
        for at in changes:
            if at is None:
                continue
            if at <= target:
                if not model.dirty:
                    model.dirty = True
                    self._dirty.append(model)
            else:
                heapq.heappush(self._heap, (at, next(self._seq), model))

    def touch(self, model, at: int) -> None:
        """``model`` changes at instant ``at``: render it now if that is not in the future."""
        if at <= self._target:
            if not model.dirty:
                model.dirty = True
                self._dirty.append(model)
        else:
            heapq.heappush(self._heap, (at, next(self._seq), model))

    # Building and advancing -----------------------------------------------------------------
    def _bulk_build(self, first_day: dt.date, last_day: dt.date) -> None:
        """Generate the history and render it at the initial clock, one merchant at a time.

        Merchants are independent (each draws from its own random streams), so they are built
        one after another, or in forked worker processes (:meth:`_build_in_workers`) when the
        dataset is large: the data are the same either way. The cyclic garbage collector is
        paused while millions of objects are created, then the survivors are frozen so later
        collections do not traverse them.
        """
        gc_was_enabled = gc.isenabled()
        gc.disable()
        self._bulk = True
        try:
            workers = self._build_workers()
            pending = list(range(len(self.states)))
            if workers > 1:
                pending = self._build_in_workers(pending, first_day, last_day, workers)
            for i in pending:
                self._build_merchant(self.states[i], first_day, last_day)
            self._normalize_heap()
        finally:
            self._bulk = False
            if gc_was_enabled:
                gc.enable()
            if sum(len(c) for st in self.states for c in st.colls.values()) >= FREEZE_THRESHOLD:
                # a big dataset lives as long as the process: keep the collector off it (no
                # collection first: the build makes no cyclic garbage worth a full traversal)
                gc.freeze()
                self.frozen = True

    def _build_merchant(self, state: MerchantState, first_day: dt.date, last_day: dt.date) -> None:
        """Generate one merchant's history up to ``last_day`` and render it at the clock.

        Models are rendered as soon as their timeline up to ``now`` is complete (a successful
        payment once its payout is built), so only a few days of models are alive at a time.
        Changes after the clock wait in the heap, tagged with the merchant's index.
        """
        config = self.config
        exact = config.payments if state.ctx.index == 0 else None
        gen = state.gen = MerchantGenerator(config, state.ctx, self, first_day, self._last_history_day, exact)
        parked: list = []
        day = first_day
        one_day = dt.timedelta(days=1)
        render = self._materialize_or_render
        while day <= last_day:
            gen.generate_day(day)
            batch, self._dirty = self._dirty, []
            for model in batch:
                kind = model.kind
                if kind == "products":
                    # purchases keep arriving until the end of the build: rendered last
                    model.dirty = False
                elif kind == "payments" and model.status is True and model.payout is None and (
                        model.settle_day <= last_day):
                    if model.settle_day < last_day:
                        # its payout is built (and visible) before the clock: building it
                        # touches the payment again
                        model.dirty = False
                    else:
                        parked.append(model)  # paid out today: maybe before the clock, maybe after
                else:
                    render(model)
            day += one_day
        for model in parked + self._dirty:
            render(model)
        self._dirty = []
        for product in gen.products:
            if product.key <= self.now:
                render(product)
        for coll in state.colls.values():
            coll.records.sort(key=_sort_key)
            coll.version += 1

    def _build_workers(self) -> int:
        """How many processes build the dataset: ``config.build_workers``, or by default
        (None) one per CPU, at most 4, on a machine of at least 4 CPUs with at least 2 of them
        idle (by the one-minute load average), for a large dataset (at least
        :data:`PARALLEL_BUILD_MIN_PAYMENTS` payments over several merchants); else one.

        Workers pay for themselves only on cores of their own: sending each merchant back to
        this process costs CPU (the parent's share alone is a quarter of the build), and on the
        2-CPU machine this project is measured on, two workers took 89 s where one process took
        58 s (README, "Speed"). The data are the same either way.
        """
        if not hasattr(os, "fork"):
            return 1
        workers = self.config.build_workers
        if workers is None:
            cpus = os.cpu_count() or 1
            expected = self.config.n_merchants * self.config.n_days * self.config.daily_payments
            large = self.config.n_merchants >= 8 and expected >= PARALLEL_BUILD_MIN_PAYMENTS
            idle = cpus >= 4 and cpus - os.getloadavg()[0] >= 2
            workers = min(4, cpus) if large and idle else 1
        return max(1, min(int(workers), len(self.states)))

    def _build_in_workers(self, todo: list[int], first_day: dt.date, last_day: dt.date,
                          workers: int) -> list[int]:
        """Build merchants in ``workers`` forked processes, each streaming back every merchant
        it finishes (pickled, with its pending changes); returns the indexes that did not
        arrive (a worker died), which the caller builds itself."""
        children: dict[int, tuple[int, bytearray]] = {}  # read fd → (pid, buffer)
        for w in range(workers):
            share = todo[w::workers]
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: build its share, write each merchant, exit
                code = 1
                try:
                    os.close(read_fd)
                    with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                        for i in share:
                            state = self.states[i]
                            self._build_merchant(state, first_day, last_day)
                            heap, self._heap = self._heap, []
                            blob = pack_merchant(i, state, heap)
                            out.write(len(blob).to_bytes(8, "little"))
                            out.write(blob)
                            self.states[i] = None  # type: ignore[call-overload]  # its memory goes
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_fd)
            children[read_fd] = (pid, bytearray())
        arrived: set[int] = set()
        with selectors.DefaultSelector() as selector:
            for fd in children:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    fd = key.fd
                    buf = children[fd][1]
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        selector.unregister(fd)
                        os.close(fd)
                        continue
                    buf += chunk
                    while len(buf) >= 8:
                        size = int.from_bytes(buf[:8], "little")
                        if len(buf) < 8 + size:
                            break
                        i, state, heap = unpack_merchant(memoryview(buf)[8:8 + size])
                        del buf[:8 + size]
                        state.gen.sink = self
                        self.states[i] = state
                        self._heap.extend(heap)
                        arrived.add(i)
        for pid, _ in children.values():
            os.waitpid(pid, 0)
        return [i for i in todo if i not in arrived]

    def _normalize_heap(self) -> None:
        """Order pending changes by (instant, merchant, creation order) and renumber them, so
        the heap is the same however the merchants were built."""
        entries = sorted(self._heap, key=lambda e: (e[0], e[2].m.index, e[1]))
        self._seq = itertools.count()
        self._heap = [(at, next(self._seq), model) for at, _, model in entries]
        heapq.heapify(self._heap)

    def advance_to(self, target: int) -> None:
        """Move the clock to ``target`` (µs): generate the new days, apply every change due."""
        with self.lock:
            if target < self.now:
                raise ValueError(f"the sandbox clock only moves forward (now {iso(self.now)}, asked {iso(target)})")
            self._target = target
            last_day = ist_day_of(target)
            for state in self.states:
                while state.gen.next_day <= last_day:
                    state.gen.generate_day(state.gen.next_day)
            heap = self._heap
            while heap and heap[0][0] <= target:
                _, _, model = heapq.heappop(heap)
                if not model.dirty:
                    model.dirty = True
                    self._dirty.append(model)
            self.now = target
            dirty, self._dirty = self._dirty, []
            new: dict[int, list[tuple[Collection, Rec]]] = defaultdict(list)
            for model in dirty:
                if model.rec is None:
                    if model.key > target:  # defensive: not visible yet
                        model.dirty = False
                        heapq.heappush(heap, (model.key, next(self._seq), model))
                        continue
                    rec = self._materialize_or_render(model)
                    new[id(self._coll(model))].append((self._coll(model), rec))
                else:
                    self._materialize_or_render(model)
            for pairs in new.values():
                coll = pairs[0][0]
                coll.insert_batch([rec for _, rec in pairs])
            for state in self.states:
                for coll in state.colls.values():
                    coll.version += 1

    def advance(self, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Move the clock forward by a duration."""
        delta = round((days * 86400 + hours * 3600 + minutes * 60 + seconds) * US)
        if delta < 0:
            raise ValueError("the sandbox clock only moves forward")
        self.advance_to(self.now + delta)

    def _coll(self, model) -> Collection:
        return self.states[model.m.index].colls[model.kind]

    def _materialize_or_render(self, model) -> Rec:
        """Create the record of a newly visible model, or re-render an existing one.

        Runs once per record of a million-record build, so the common path is kept flat.
        """
        model.dirty = False
        state = self.states[model.m.index]
        kind = model.kind
        coll = state.colls[kind]
        rec = model.rec
        if rec is None:
            rid = model.id
            rec = Rec(model.key, rid, model)
            model.rec = rec
            coll.by_id[rid] = rec
            if kind == "payments":
                indexes = coll.indexes
                buyer = model.buyer
                if buyer.username is not None:
                    by_buyer = indexes["buyer"]
                    for value in (buyer.username, buyer.account_id):
                        bucket = by_buyer.get(value)
                        if bucket is None:
                            by_buyer[value] = [rec]
                        else:
                            bucket.append(rec)
                if model.product is not None:
                    bucket = indexes["product"].get(model.product.slug)
                    if bucket is None:
                        indexes["product"][model.product.slug] = [rec]
                    else:
                        bucket.append(rec)
                if model.order_id is not None:
                    bucket = indexes["order_id"].get(model.order_id)
                    if bucket is None:
                        indexes["order_id"][model.order_id] = [rec]
                    else:
                        bucket.append(rec)
            elif kind == "products":
                covers = Collection("product_covers")
                for cover in model.covers:
                    cover_rec = Rec(cover["position"], str(cover["id"]))
                    cover_rec.json = dumps(cover)
                    covers.records.append(cover_rec)
                    covers.by_id[cover_rec.id] = cover_rec
                state.covers[model.slug] = covers
            if self._bulk:
                coll.records.append(rec)
        now = self.now
        patch = coll.patches.get(rec.id) if coll.patches else None
        if (kind == "payments" or kind == "orders") and not patch:
            rec.json, tag = model.render_json(now)
        else:
            data, tag = model.render(now)
            if patch:
                data.update(patch)
            rec.json = memoryview(orjson.dumps(data)).tobytes()  # see dumps()
        if tag != rec.tag:
            if coll.tag_index is not None:
                if rec.tag is not None:
                    coll.remove_index(coll.tag_index, rec.tag, rec)
                if tag is not None:
                    bucket = coll.indexes[coll.tag_index].get(tag)
                    if bucket is None:
                        coll.indexes[coll.tag_index][tag] = [rec]
                    else:
                        bucket.append(rec)
            rec.tag = tag
        if model.is_final(now):
            rec.model = None  # free the timeline: nothing about this record changes any more
        return rec

    def patch(self, state: MerchantState, endpoint: str, rid: str, fields: dict) -> dict:
        """Overwrite or add fields of a served record, now and after every re-render (anomalies).

        Returns the record as served before the patch.
        """
        with self.lock:
            coll = state.colls[endpoint]
            rec = coll.by_id.get(rid)
            if rec is None:
                raise KeyError(f"{endpoint} record {rid!r} not found for merchant {state.username!r}")
            before = orjson.loads(rec.json)
            coll.patches.setdefault(rid, {}).update(fields)
            data = dict(before)
            data.update(fields)
            rec.json = dumps(data)
            coll.version += 1
            return before

    def insert_record(self, state: MerchantState, model) -> Rec:
        """Insert a hand-made model (an anomaly) visible now, wherever its key sorts."""
        with self.lock:
            coll = state.colls[model.kind]
            model.dirty = False
            model.rec = None
            rec = self._materialize_or_render(model)
            coll.insert_batch([rec])
            return rec

    # Reading ------------------------------------------------------------------------------
    def state(self, merchant: str | None) -> MerchantState:
        """A merchant by username or account id (None = the first merchant)."""
        if merchant is None:
            return self.states[0]
        state = self.by_name.get(merchant) or self.by_account.get(merchant)
        if state is None:
            raise KeyError(f"unknown merchant {merchant!r}; merchants: {sorted(self.by_name)}")
        return state

    def truth(self, merchant: str | None, endpoint: str):
        """The full dataset of one endpoint exactly as the API serves it now.

        Lists are in ascending (created_at, id) order (paid_out_at for payouts), each record
        once; ``product_covers`` is a dict slug → covers; user endpoints are one dict.
        """
        endpoint = endpoint.replace("-", "_")
        if endpoint not in TRUTH_ENDPOINTS:
            raise KeyError(f"unknown endpoint {endpoint!r}; choose one of {list(TRUTH_ENDPOINTS)}")
        with self.lock:
            state = self.state(merchant)
            if endpoint == "user_info":
                return orjson.loads(state.user_info)
            if endpoint == "user_contact":
                return orjson.loads(state.user_contact)
            if endpoint == "product_covers":
                visible = state.colls["products"].by_id
                return {
                    slug: [orjson.loads(r.json) for r in covers.records]
                    for slug, covers in state.covers.items()
                    if slug in visible
                }
            return [orjson.loads(r.json) for r in state.colls[endpoint].records]

    def relations(self, merchant: str | None) -> dict:
        """The hidden relations behind the served payouts, as of now.

        ``payouts``: payout id → {paid_out_at, settlement_date, settled, held, released,
        held_refunded, refunded} (payment ids). ``payments``: payment id → {settled_in,
        held, released_in, refunded_in} for every payment a visible payout mentions.
        """
        with self.lock:
            state = self.state(merchant)
            payouts = {}
            payments: dict[str, dict] = {}

            def entry(pid: str) -> dict:
                return payments.setdefault(
                    pid, {"settled_in": None, "held": False, "released_in": None, "refunded_in": None})

            for rec in state.colls["payouts"].records:
                model = state.gen.payouts.get(rec.id)
                if model is None:
                    continue
                rel = model.relations()
                payouts[rec.id] = rel
                for pid in rel["settled"]:
                    entry(pid)["settled_in"] = rec.id
                for pid in rel["held"]:
                    entry(pid)["held"] = True
                for pid in rel["released"]:
                    entry(pid)["released_in"] = rec.id
                for pid in rel["held_refunded"] + rel["refunded"]:
                    entry(pid)["refunded_in"] = rec.id
            return {"payouts": payouts, "payments": payments}

    def counts(self) -> dict:
        """Visible records per merchant and endpoint."""
        with self.lock:
            return {
                s.username: {name: len(coll) for name, coll in s.colls.items()}
                for s in self.states
            }
