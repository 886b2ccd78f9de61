"""One sync at a time: an exclusive, non-blocking `flock` on a file next to the pipelines.

The kernel drops the lock when the holder exits, however it exits (crash, kill -9), so a stale
lock never blocks the next cron run; the file's content only says who holds it.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType


class AlreadyRunning(RuntimeError):
    """Another sync holds the lock."""


class SyncLock:
    """`with SyncLock(path): ...` — raises `AlreadyRunning` at once if another process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> "SyncLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise AlreadyRunning(
                f"another sync is running ({holder}); this run did nothing. It holds {self.path}; "
                "the lock is released when that process exits."
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
