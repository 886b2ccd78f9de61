"""Keep a long sync's resident memory near what it really uses.

Allocators hold on to memory a sync has already freed; they are told not to:

- pyarrow's default memory pool in its wheels (mimalloc) keeps the pages of freed buffers for
  reuse instead of returning them. A backfill of a thousand merchants moves about 1.5 million rows
  through short-lived Arrow tables; measured at `make bench-merchants`' sizes, the backfill's peak
  was about 160 MiB higher with it at 1,000 merchants (903 against 746 MiB) and about 135 MiB
  higher at 100 (667-676 against 533-540 MiB), at no measurable difference in speed. So the sync
  allocates Arrow buffers from the system allocator
  (https://arrow.apache.org/docs/python/memory.html).
- glibc's malloc gives every new thread an arena of its own, up to eight per core, and an arena's
  freed memory is reused only by the threads that share it. A sync runs DuckDB's threads, its
  merchants and their page fetches on a few dozen threads, so freed page bodies and Arrow buffers
  were spread over a dozen arenas, each keeping its share. The sync caps them at two (glibc's
  `M_ARENA_MAX`, the setting the environment variable MALLOC_ARENA_MAX also makes,
  https://www.gnu.org/software/libc/manual/html_node/Memory-Allocation-Tunables.html) before
  any of those threads start. Measured with `make bench-merchants`' worker (30 days, 20 payments
  a day; DuckDB's load cap at 384MB then): the backfill's peak went from 767 to 680-688 MiB at
  1,000 merchants and from 536 to 469-490 MiB at 100, in the same time (201-208 s; 21-23 s).
  The threads spend their time waiting for HTTP, not in malloc, so two arenas do not slow them.
- Between the extract and the load the sync hands the heap's free memory back
  (`malloc_trim`): at 1,000 merchants the process went from 526 to 310 MiB there, at 100 from
  353 to 270 MiB. That is not the peak (the load's DuckDB merge needs more than was left over,
  up to its `duckdb_memory_limit`), but it is memory the load, the marts after it and a parallel
  shard on the same machine get back.

None of it changes a result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

# glibc's mallopt parameter for the arena limit (malloc.h: #define M_ARENA_MAX -8)
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Limit glibc's malloc to `arenas` arenas for threads started from now on, for the rest of
    the process (an arena, once made, lives as long as the process). True when applied; False
    where there is no glibc (macOS, musl) or the user chose a limit with MALLOC_ARENA_MAX, which
    glibc has applied already."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def release_freed_memory() -> bool:
    """Hand the heap memory malloc holds free back to the system (glibc's `malloc_trim`); True
    when glibc was there to ask (False on macOS, musl). Called between a sync's extract and its
    load: the extract's freed page bodies and Arrow buffers would otherwise sit under the load's
    own peak."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.malloc_trim(0)
    return True


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    # cached: find_library runs `ldconfig -p` in a subprocess, and libc does not move
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@contextmanager
def bounded_memory() -> Iterator[None]:
    """For the length of the block, pyarrow allocates from the system allocator."""
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
