"""The page in a real browser: headless Chromium, network off, opens the file from disk; every
section is there, every chart drew marks, nothing failed in the console, nothing was fetched;
screenshots (desktop and phone) and the printed PDF are saved under tests.browser.ARTIFACTS."""

from __future__ import annotations

from pathlib import Path

import pytest

from report import Marts, write_report
from report.render import SECTIONS
from tests.browser import ARTIFACTS
from tests.report.reportdata import Built

pytestmark = pytest.mark.slow

# marks Vega draws: bars are paths in groups of class mark-rect, labels mark-text, and so on
MARKS_JS = """
const figures = [...document.querySelectorAll('figure[data-chart]')];
return figures.map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {chart: f.dataset.chart,
          merchant: f.closest('[data-merchant]').dataset.merchant,
          svg: !!svg, width: box.width, height: box.height,
          bars: svg ? svg.querySelectorAll('g.mark-rect path').length : 0,
          labels: svg ? svg.querySelectorAll('g.mark-text text').length : 0};
});
"""


@pytest.fixture(scope="module")
def page(anomalous, tmp_path_factory) -> tuple[Built, Path]:
    built = anomalous
    wh = built.open()
    try:
        result = write_report(Marts(wh, built.schema), tmp_path_factory.mktemp("page") / "index.html")
    finally:
        wh.close()
    return built, result.path


def test_every_section_and_chart_renders_offline_without_errors(page, browser):
    built, path = page
    loaded = browser.open(path)
    assert loaded.console_errors == []
    assert loaded.external_requests == []
    found = browser.js("return [...document.querySelectorAll('main > section')].map(s => s.id)")
    assert [s for s, _ in SECTIONS] == [s for s in found if s != "freshness"]
    for section, _ in SECTIONS:
        visible = browser.js("const s = document.getElementById(arguments[0]); "
                             "return s.getBoundingClientRect().height > 40 && s.querySelector('h2').innerText", section)
        assert visible, section
    charts = browser.js(MARKS_JS)
    kinds = {(c["merchant"], c["chart"]) for c in charts}
    for merchant in built.merchants:
        # both merchants have unsettled money and exceptions in the anomalous warehouse
        assert {(merchant, k) for k in ("flow", "daily", "aging", "exceptions")} <= kinds
    for c in charts:
        assert c["svg"] and c["width"] > 100 and c["height"] > 100, c
        assert c["bars"] > 0 and c["labels"] > 0, c
    # the itemized downloads sit beside the page and the links resolve to them
    for href in browser.js("return [...document.querySelectorAll('#downloads a')].map(a => a.href)"):
        assert href.startswith("file://") and Path(href[len("file://"):]).exists(), href
    shot = browser.screenshot("report-desktop")
    assert shot.exists() and shot.stat().st_size > 50_000
    pdf = browser.print_pdf("report-print")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_readable_on_a_phone(page, browser):
    _, path = page
    browser.resize(390, 844)
    loaded = browser.open(path)
    assert loaded.console_errors == []
    # nothing wider than the screen but the tables and charts, which scroll inside their boxes
    overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    tiles = browser.js("return [...document.querySelectorAll('#summary .tile')].slice(0, 2)"
                       ".map(t => t.getBoundingClientRect().width)")
    assert all(120 < w < 200 for w in tiles), tiles  # two tiles a row
    browser.screenshot("report-phone")


def test_empty_warehouse_page_says_so(tmp_path, browser):
    from transforms import ReconciliationSettings, Warehouse, build_marts

    wh = Warehouse.duckdb(str(tmp_path / "empty.duckdb"))
    try:
        build_marts(wh, raw_schema="instamojo_raw", marts_schema="instamojo", settings=ReconciliationSettings())
        result = write_report(Marts(wh, "instamojo"), tmp_path / "out" / "index.html")
    finally:
        wh.close()
    loaded = browser.open(result.path)
    assert loaded.console_errors == [] and loaded.external_requests == []
    text = browser.js("return document.body.innerText")
    assert "No data yet" in text and "make sync" in text
    browser.screenshot("report-empty", full_page=False)
    assert ARTIFACTS.exists()
