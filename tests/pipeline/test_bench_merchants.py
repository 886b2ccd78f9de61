"""`make bench-merchants` at a tiny size: it runs end to end (our engine, the per-merchant engine
exported from git history, the memory comparison) and prints every row with numbers. Timings
are never judged here; the figures are for a person to read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(?:\.\d+)?"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_benchmark_prints_every_figure_at_a_tiny_size(tmp_path):
    output = tmp_path / "figures.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pipelines", "bench-merchants", "--merchants", "3", "--days", "2",
         "--baseline-sample", "2", "--skip-latency", "--output", str(output)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = output.read_text()
    assert text.strip() == run.stdout.strip()
    assert "load average" in text.splitlines()[0]
    rows = {
        "backfill": 3, "sync, nothing new": 3, r"hourly \(clock \+1 h\)": 3,
        "per-merchant backfill": 2, "per-merchant sync, nothing new": 2,
        r"per-merchant backfill \(×1\.5: 2 → 3\)": 3, r"per-merchant sync, nothing new \(×1\.5: 2 → 3\)": 3,
    }
    for name, merchants in rows.items():
        # name, merchants, wall seconds, requests, then rows and peak RSS (a dash for the baseline)
        line = re.search(rf"^  {name} +{merchants} +({NUMBER}) +({NUMBER}) +(\S+) +(\S+)", text, re.MULTILINE)
        assert line, (name, text)
        seconds, requests = (float(v.replace(",", "")) for v in line.groups()[:2])
        assert seconds > 0 and requests > 0, line.group(0)
    for ours in ("backfill", "sync, nothing new"):
        line = re.search(rf"^  {ours} +3 +{NUMBER} +{NUMBER} +({NUMBER}) +({NUMBER}) MiB", text, re.MULTILINE)
        assert line and int(line.group(1).replace(",", "")) > 0, text  # rows loaded, peak RSS
    assert re.search(rf"sync with nothing new, per-merchant \(scaled\) / ours = .* = {NUMBER}×   aim ≥ 20×: (met|NOT met)",
                     text), text
    assert re.search(rf"peak memory of the backfill: 1 merchants {NUMBER} MiB, 3 merchants {NUMBER} MiB → "
                     rf"{NUMBER}× .* aim ≤ 1\.3×: (met|NOT met)", text), text
    assert "secret" not in text and "sandbox-demo-secret" not in run.stderr
