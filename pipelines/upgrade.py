"""Where a merchant's state comes from when the pipeline syncing it has none yet.

- Another shard: merchants are assigned to shards by a hash of their name, so changing the number
  of shards moves some merchants to another shard's pipeline. Their state is taken from the
  pipeline that holds the newest one (`updated_at`): the other pipelines' working folders, and
  the destination's `_dlt_pipeline_state` table, where dlt stores every pipeline's state with
  each load (so a worker with an empty folder finds it too).

Upgrading from per-merchant pipelines:

Before the many-merchants engine, each merchant had its own dlt pipeline (`instamojo_<merchant>`
in the pipelines folder) with its own cursors. On the first run of the engine for such a merchant:
a load package that pipeline left unfinished is loaded first (its data is not lost), its state is
taken over in today's layout (no re-backfill, nothing re-read beyond the lookbacks), and once the
engine has committed the merchant's own state, the old folder is moved to `.upgraded/` (kept as
a backup; delete it when you like).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import dlt
from dlt.common.runtime.collector import NULL_COLLECTOR

from sources.instamojo.state import MerchantState, from_legacy_pipeline_state

from .config import Settings

log = logging.getLogger(__name__)

LEGACY_PREFIX = "instamojo_"
ENGINE_PREFIX = "instamojo__"  # the engine's pipelines: instamojo__sync, instamojo__shard_03 …
WAREHOUSE_PIPELINE = "instamojo__warehouse"  # only ever used for its connection
UPGRADED_DIR = ".upgraded"


def _merchants_of(state: Any) -> dict[str, Any]:
    return ((state or {}).get("sources") or {}).get("instamojo", {}).get("merchants") or {}


class LegacyStates:
    """The per-merchant pipelines of an earlier version found in the pipelines folder."""

    def __init__(self, settings: Settings, destination: Any) -> None:
        self.settings = settings
        self.destination = destination
        self._adopted: set[str] = set()

    def folder(self, merchant: str) -> Path:
        return self.settings.pipelines_dir / f"{LEGACY_PREFIX}{merchant}"

    def _pipeline(self, merchant: str) -> dlt.Pipeline | None:
        if not (self.folder(merchant) / "state.json").is_file():
            return None
        return dlt.pipeline(
            pipeline_name=f"{LEGACY_PREFIX}{merchant}",
            pipelines_dir=str(self.settings.pipelines_dir),
            destination=self.destination,
            dataset_name=self.settings.raw_dataset,
            progress=NULL_COLLECTOR,
        )

    def prepare(self, merchants: list[str], *, own_pipeline: str | None = None) -> dict[str, MerchantState]:
        """For merchants the engine holds no state of: the newest state another engine pipeline
        (shard) holds; else what an earlier version's per-merchant pipeline left (its unfinished
        load package loaded first: those pipelines shared one staging dataset, so one after
        another). Returns merchant → state."""
        states = self._from_other_pipelines(merchants, own_pipeline or self.settings.pipeline_name)
        for merchant in merchants:
            if merchant in states:
                continue
            pipeline = self._pipeline(merchant)
            if pipeline is None:
                continue
            if pipeline.has_pending_data:
                log.warning("merchant %r: loading what an earlier version's run left unfinished", merchant)
                pipeline.normalize()
                pipeline.load()
            state = from_legacy_pipeline_state(pipeline.state)
            if state is not None:
                states[merchant] = state
                self._adopted.add(merchant)
                log.info("merchant %r: taking over the cursors of the earlier per-merchant pipeline", merchant)
        return states

    def _from_other_pipelines(self, merchants: list[str], own: str) -> dict[str, MerchantState]:
        if not merchants:
            return {}
        wanted = set(merchants)
        found: dict[str, MerchantState] = {}

        def offer(states: Any) -> None:
            for merchant, state in (states or {}).items():
                if merchant in wanted and isinstance(state, dict):
                    if merchant not in found or str(state.get("updated_at") or "") > str(found[merchant].get("updated_at") or ""):
                        found[merchant] = state

        for folder in sorted(self.settings.pipelines_dir.glob(f"{ENGINE_PREFIX}*")):
            if folder.name in (own, WAREHOUSE_PIPELINE) or not (folder / "state.json").is_file():
                continue
            pipeline_state = dlt.pipeline(pipeline_name=folder.name, pipelines_dir=str(self.settings.pipelines_dir),
                                          progress=NULL_COLLECTOR).state
            offer(_merchants_of(pipeline_state))
        for state in self._destination_states(own):
            offer(_merchants_of(state))
        for merchant in found:
            log.info("merchant %r: taking over its state from another shard's pipeline", merchant)
        return found

    def _destination_states(self, own: str) -> list[dict[str, Any]]:
        """The newest stored state of every other engine pipeline in the destination."""
        from dlt.common.versioned_state import decompress_state

        from .warehouse import open_warehouse

        try:
            with open_warehouse(self.settings) as wh:
                if not wh.table_exists(self.settings.raw_dataset, "_dlt_pipeline_state"):
                    return []
                _, rows = wh.query(
                    f"SELECT pipeline_name, state FROM {self.settings.raw_dataset}._dlt_pipeline_state s "
                    f"WHERE pipeline_name LIKE {wh.placeholder} AND pipeline_name <> {wh.placeholder} AND version = "
                    f"(SELECT max(version) FROM {self.settings.raw_dataset}._dlt_pipeline_state t "
                    "WHERE t.pipeline_name = s.pipeline_name)",
                    (f"{ENGINE_PREFIX}%", own),
                )
        except Exception as exc:  # a destination not there yet: nothing stored in it either
            log.debug("no stored pipeline states: %s", exc)
            return []
        return [decompress_state(state) for _, state in rows]

    def retire(self, merchants: list[str]) -> None:
        """Move the old folders of merchants whose state the engine now holds out of the way."""
        for merchant in merchants:
            if merchant not in self._adopted or not self.folder(merchant).exists():
                continue
            target = self.settings.pipelines_dir / UPGRADED_DIR / self.folder(merchant).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(self.folder(merchant)), str(target))
