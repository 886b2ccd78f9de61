"""The sync's allocator settings (pipelines/memory.py), each in a fresh interpreter: glibc's arena
limit holds for the rest of a process, and MALLOC_ARENA_MAX is read when the process starts."""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Start threads that each allocate, then count malloc's arenas in glibc's own report (one
# <heap> element per arena); print whether the cap was applied and the count.
PROBE = """
import ctypes, ctypes.util, json, os, re, sys, tempfile, threading
from pipelines.memory import cap_malloc_arenas
applied = None
if sys.argv[1] == "cap":
    applied = cap_malloc_arenas()
elif sys.argv[1] == "sync":
    from pathlib import Path
    from pipelines.config import Settings
    from pipelines.sync import sync_merchants
    folder = Path(sys.argv[2])  # no merchant: nothing fetched; the warehouse opened all the same
    sync_merchants(Settings(base_url="http://127.0.0.1:9", client_id="app", client_secret="s", merchants=(),
                            refresh_tokens={}, token_store_path=folder / "tokens", destination="duckdb",
                            duckdb_path=folder / "warehouse.duckdb", pipelines_dir=folder / "pipelines"))
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)
def work():
    start.wait()  # all alive at once: none can inherit an arena another thread gave back
    p = libc.malloc(4096)  # below the mmap threshold: served by the thread's arena
    libc.free(p)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "malloc_info.xml")
    fp = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    report = open(path).read()
print(json.dumps({"applied": applied, "arenas": len(re.findall(r"<heap nr=", report))}))
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or ctypes.util.find_library("c") is None,
    reason="malloc arenas are glibc's",
)


def _probe(mode: str, *args: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    environ["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", PROBE, mode, *args], env=environ, cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_threads_share_two_arenas_once_capped():
    uncapped = _probe("none")
    capped = _probe("cap")
    assert uncapped["arenas"] > 2, uncapped  # glibc's default: a new arena per thread (8 per core)
    assert capped == {"applied": True, "arenas": 2}


@glibc_only
def test_the_sync_caps_arenas_before_its_threads_start(tmp_path):
    assert _probe("sync", str(tmp_path))["arenas"] == 2


@glibc_only
def test_a_users_malloc_arena_max_is_left_alone():
    result = _probe("cap", MALLOC_ARENA_MAX="4")
    assert result["applied"] is False
    assert 2 < result["arenas"] <= 4


# Fill the heap with small blocks, free all but the last (which keeps the heap from shrinking
# by itself), then print the resident MiB before and after giving the freed memory back.
TRIM_PROBE = """
import ctypes, ctypes.util, json, os
from pipelines.memory import release_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [libc.malloc(1000) for _ in range(150_000)]
for b in blocks:
    libc.memset(b, 1, 1000)  # touched: resident
for b in blocks[:-1]:
    libc.free(b)
before = resident_mib()
released = release_freed_memory()
print(json.dumps({"released": released, "before": before, "after": resident_mib()}))
"""


@glibc_only
def test_freed_heap_memory_goes_back_to_the_system():
    environ = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], env=environ, cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["released"] is True
    # about 150 MB were freed inside the heap; most of it must leave the process
    assert result["before"] - result["after"] > 100, result
