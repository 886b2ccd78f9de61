"""One sync at a time: an exclusive, non-blocking `flock` on a file next to the pipelines.

The kernel drops the lock when the holder exits, however it exits (crash, kill -9), so a stale
lock never blocks the next cron run; the file's content only says who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType


class AlreadyRunning(RuntimeError):
    """Another sync holds the lock."""


class SyncLock:
    """`with SyncLock(path): ...` — raises `AlreadyRunning` at once if another process holds it.

    `shared=True` is for readers that must not see a sync halfway (the checks on Postgres): any
    number of them may hold it together, never beside a sync. `wait` seconds: wait that long for
    the holder to finish (calling `waiting(holder)` once) instead of refusing at once."""

    def __init__(self, path: Path, *, shared: bool = False, wait: float = 0.0,
                 waiting: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.shared = shared
        self.wait = wait
        self.waiting = waiting
        self._fd: int | None = None

    def __enter__(self) -> SyncLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
                if time.monotonic() < deadline:
                    if not told and self.waiting is not None:
                        self.waiting(holder)
                    told = True
                    time.sleep(0.2)
                    continue
                os.close(fd)
                raise AlreadyRunning(
                    f"another sync is running ({holder}); this run did nothing. It holds {self.path}; "
                    "the lock is released when that process exits."
                ) from None
        if not self.shared:
            os.ftruncate(fd, 0)
            started = datetime.now(UTC).isoformat(timespec="seconds")
            os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            if not self.shared:
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
