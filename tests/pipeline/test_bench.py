"""`make bench` at a tiny size: the interleaved backfills (ceiling, ours into DuckDB and into
Postgres, the careful dlt peer) print every row and ratio as a median with its min–max, and the
throwaway Postgres schemas are gone afterwards. Timings are never judged here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(?:\.\d+)?"
SPREAD = rf"{NUMBER}×? \({NUMBER}–{NUMBER}×?\)"  # median (min–max)
DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _schemas(prefix: str) -> list[str]:
    with psycopg2.connect(DSN, connect_timeout=5) as con, con.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace")
        return [n for (n,) in cur.fetchall() if n.startswith(prefix)]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_the_bench_interleaves_and_prints_medians_with_their_spread(tmp_path):
    output = tmp_path / "figures.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pipelines", "bench", "--payments", "1500", "--pairs", "3", "--skip-baseline",
         "--skip-memory", "--skip-latency", "--skip-transforms", "--output", str(output)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = output.read_text()
    assert "load average" in text.splitlines()[0]
    assert len(re.findall(r"^  … round \d of 3: ceiling .* ours .* peer .* postgres ", text, re.MULTILINE)) == 3, text
    for name in ("ceiling: requests", "instamojo-elt → DuckDB", "instamojo-elt → Postgres", "careful dlt: rest_api"):
        assert re.search(rf"^  {name}.* {NUMBER} +{SPREAD} +{SPREAD}$", text, re.MULTILINE), (name, text)
    for ratio in ("instamojo-elt / ceiling", "instamojo-elt / careful dlt", r"Postgres / DuckDB \(ours\)"):
        assert re.search(rf"^  {ratio} += {SPREAD}", text, re.MULTILINE), (ratio, text)
    assert re.search(r"sync with nothing new: \d+ requests", text)
    prefix = re.search(r"throwaway schemas (bench_\d+)_\*, dropped after", text)
    assert prefix, text
    assert _schemas(prefix.group(1) + "_") == []  # the throwaway datasets were dropped
    assert "sandbox-demo-secret" not in text + run.stderr
