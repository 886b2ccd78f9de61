"""Upgrading from per-merchant pipelines.

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
UPGRADED_DIR = ".upgraded"


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

    def prepare(self, merchants: list[str]) -> dict[str, MerchantState]:
        """For merchants the engine holds no state of: load what their earlier pipeline extracted
        and never loaded (one after another: those pipelines shared one staging dataset), then
        take over its state in today's layout. Returns merchant → state."""
        states = {}
        for merchant in merchants:
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
