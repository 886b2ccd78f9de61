"""Merchants assigned to shards, and the orchestration settings.

A merchant's shard is a stable hash of its name (SHA-256, never Python's salted `hash()`) modulo
the number of shards, so every process, machine and run agrees, and adding a merchant never moves
another one. Changing the number of shards moves merchants; each keeps its cursors (a pipeline
takes a merchant's state from the `instamojo__*` pipeline that held it: pipelines/upgrade.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.config import ConfigError, ConfigReader, Settings

SECTION = "orchestration"
DEFAULT_SHARDS = 4
MAX_SHARDS = 256
# shards running at once, when not configured: Postgres takes parallel loads, DuckDB one writer
DEFAULT_PARALLEL = {"postgres": 2, "duckdb": 1}
POOL = "instamojo_shards"


def shard_index(merchant: str, shards: int) -> int:
    """The shard (1 … `shards`) of `merchant`: SHA-256 of its name, modulo `shards`."""
    digest = hashlib.sha256(merchant.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def shard_key(index: int, shards: int) -> str:
    """The partition key of shard `index` of `shards`, e.g. `shard_03_of_08`."""
    return f"shard_{index:02d}_of_{shards:02d}"


def shard_keys(shards: int) -> list[str]:
    return [shard_key(i, shards) for i in range(1, shards + 1)]


def parse_shard_key(key: str) -> tuple[int, int]:
    """(index, shards) of a partition key such as `shard_03_of_08`; ValueError if it is none."""
    parts = key.split("_")
    if len(parts) != 4 or parts[0] != "shard" or parts[2] != "of" or not (parts[1].isdigit() and parts[3].isdigit()):
        raise ValueError(f"{key!r} is not a shard key such as 'shard_03_of_08'")
    index, shards = int(parts[1]), int(parts[3])
    if not 1 <= index <= shards:
        raise ValueError(f"{key!r}: shard {index} of {shards} does not exist")
    return index, shards


def merchants_of(key: str, merchants: Sequence[str]) -> list[str]:
    """The merchants of the shard `key`, in their configured order."""
    index, shards = parse_shard_key(key)
    return [m for m in merchants if shard_index(m, shards) == index]


def pipeline_name(key: str) -> str:
    """The shard's dlt pipeline: its own state, working folder and staging dataset. The
    `instamojo__` prefix lets a merchant moving between shards take its cursors along."""
    return f"instamojo__{key}"


@dataclass(frozen=True)
class OrchestrationSettings:
    """`[orchestration]` in .dlt/config.toml (environment: ORCHESTRATION__SHARDS, …)."""

    shards: int = DEFAULT_SHARDS
    max_parallel_shards: int = 1

    @classmethod
    def load(cls, settings: Settings, reader: ConfigReader | None = None) -> OrchestrationSettings:
        """Read and check the settings; with DuckDB more than one shard at once is refused (one
        writer per file)."""
        cfg = reader or ConfigReader()
        shards = cfg.number(f"{SECTION}.shards", DEFAULT_SHARDS, kind=int, minimum=1, maximum=MAX_SHARDS)
        parallel = cfg.number(f"{SECTION}.max_parallel_shards", DEFAULT_PARALLEL[settings.destination],
                              kind=int, minimum=1, maximum=MAX_SHARDS)
        if settings.destination == "duckdb" and parallel > 1:
            raise ConfigError(
                f"{SECTION}.max_parallel_shards = {parallel} (from {cfg.where(f'{SECTION}.max_parallel_shards')}) "
                "is not valid with the DuckDB destination: a DuckDB file has one writer, so shards run one "
                "at a time. Set it to 1, or use the Postgres destination for parallel shards.")
        return cls(shards=shards, max_parallel_shards=parallel)


def shard_settings(settings: Settings, orchestration: OrchestrationSettings,
                   lookback_days: float | None = None) -> Settings:
    """A shard's settings: the app-wide rate limit divided among the shards that may run at
    once (together they stay under it), and the lookback of a deep run."""
    source = settings.source
    if source.app_max_requests_per_second:
        source = dataclasses.replace(
            source, app_max_requests_per_second=source.app_max_requests_per_second / orchestration.max_parallel_shards)
    if lookback_days is not None:
        source = dataclasses.replace(source, payments_lookback_days=lookback_days, payouts_lookback_days=lookback_days,
                                     products_lookback_days=lookback_days, orders_lookback_days=lookback_days)
    return settings.with_overrides(source=source)
