"""Progress of a long sync, on stderr: a bar over merchants on a terminal, a line every 30 s under
cron (so a log shows a run is alive and how far it got), nothing with `--progress none`."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from sources.instamojo import RunNotes


class MerchantProgress:
    """Counts merchants as they finish; `done` is called from the sync's main thread."""

    def __init__(self, total: int, mode: str = "auto", *, stream: TextIO | None = None, period: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.total = total
        self.period = period
        self.finished = self.failed = self.rows = self.requests = 0
        self.started = time.perf_counter()
        self._last = self.started
        self._lock = threading.Lock()
        self._bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="merchant", file=self.stream, colour="green", desc="sync")

    def done(self, notes: RunNotes) -> None:
        with self._lock:
            self.finished += 1
            self.failed += 0 if notes.ok else 1
            self.rows += sum(notes.rows_by_table.values())
            self.requests += sum(notes.requests_by_endpoint.values())
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(failed=self.failed, rows=self.rows, requests=self.requests, refresh=False)
            elif self.mode == "log":
                now = time.perf_counter()
                if now - self._last >= self.period or self.finished == self.total:
                    self._last = now
                    print(self.line(), file=self.stream, flush=True)

    def phase(self, text: str) -> None:
        """A step after extraction (normalize and load, transforms …)."""
        if self.mode != "none":
            print(f"{text} ({time.perf_counter() - self.started:.0f} s)", file=self.stream, flush=True)

    def line(self) -> str:
        return (f"merchants {self.finished:,}/{self.total:,} done, {self.failed:,} failed; {self.rows:,} rows, "
                f"{self.requests:,} requests; {time.perf_counter() - self.started:.0f} s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
