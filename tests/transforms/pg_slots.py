"""Postgres schema names for tests: this process's id and a slot, reused once a test dropped its
schemas. dbt's parse of the project (seconds) depends on the schema names, so it is done once per
slot instead of once per test. Kept in a module of its own: pytest imports a conftest.py under a
name of its own, and a test importing `tests.transforms.conftest` would get a second copy of any
state kept there."""

from __future__ import annotations

import itertools
import os

_IN_USE: set[int] = set()


def take(prefix: str) -> tuple[int, str]:
    """A free slot and the schema name prefix for it (`<prefix>_<pid>_<slot>`)."""
    slot = next(i for i in itertools.count() if i not in _IN_USE)
    _IN_USE.add(slot)
    return slot, f"{prefix}_{os.getpid()}_{slot}"


def give_back(slot: int) -> None:
    _IN_USE.discard(slot)
