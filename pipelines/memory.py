"""Keep a long sync's resident memory near what it really uses.

A backfill of a thousand merchants moves about 1.5 million rows through short-lived Arrow
tables. pyarrow's default memory pool in its wheels (mimalloc) keeps the pages of freed buffers
for reuse instead of returning them; measured at `make bench-merchants`' sizes, the backfill's
peak was about 160 MiB higher with it at 1,000 merchants (903 against 746 MiB) and about 135 MiB
higher at 100 (667–676 against 533–540 MiB), at no measurable difference in speed. So the sync allocates Arrow
buffers from the system allocator (https://arrow.apache.org/docs/python/memory.html). It
changes no result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
