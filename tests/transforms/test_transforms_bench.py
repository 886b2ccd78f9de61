"""`python -m transforms.bench` (and the marts part of `make bench`) at a tiny size: both
comparisons run to their line of medians, the previous runner comes from git history, the
incremental builds rebuild the changed merchants only, and the synthetic data is clean (no
exception). Timings are never judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transforms.marts import MARTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_marts_bench_runs_both_comparisons_to_their_medians(tmp_path):
    output = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "transforms.bench", "--runs", "1", "--payments", "2000", "--incremental-payments",
         "20000", "--merchants", "100", "--incremental-runs", "1", "--output", str(output)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "full build, median: previous runner" in run.stdout
    assert "incremental, new payments" in run.stdout and "new rows in every table" in run.stdout
    figures = json.loads(output.read_text())
    full, incremental = figures["full"], figures["incremental"]
    assert full["raw_rows"]["payments"] == 2000 and full["exceptions"] == 0
    assert len(full["old_seconds"]) == len(full["dbt_seconds"]) == 1
    assert incremental["raw_rows"]["payments"] == 20000 and incremental["changed_merchants"] == 1
    # every model ran in both incremental builds (the ones with nothing to rebuild too)
    for models in (incremental["incremental_model_seconds"], incremental["every_table_model_seconds"]):
        assert set(MARTS) <= set(models), models
