"""The report on Postgres: the same command, `--destination postgres`, over marts the pipeline
built there from the sandbox with every anomaly injected; every figure equals its SQL sum on
Postgres, and each anomaly shows with the truth's id."""

from __future__ import annotations

from decimal import Decimal

import pytest

from report.formatting import count, inr
from tests.report.reportdata import Truth, build, parse, run_report

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def on_postgres(tmp_path_factory):
    built = build(tmp_path_factory.mktemp("pg"), anomalies=True, destination="postgres")
    yield built
    built.drop()


def test_report_on_postgres_equals_its_sql(on_postgres, tmp_path):
    out = tmp_path / "index.html"
    proc = run_report("--destination", "postgres", "--output", str(out), env=on_postgres.env())
    assert proc.returncode == 0, proc.stderr
    assert "Postgres" in out.read_text(encoding="utf-8")
    page = parse(out)
    wh = on_postgres.open()
    try:
        end = on_postgres.as_of
        from datetime import timedelta

        truth = Truth(wh, on_postgres.schema, end - timedelta(days=29), end)
        assert len(page.figures) > 100
        for fig in page.figures:
            expected = truth.value(fig.key, fig.merchant)
            if isinstance(expected, Decimal):
                assert Decimal(fig.value) == expected and fig.text.strip() == inr(expected), fig
            else:
                assert int(fig.value) == expected and fig.text.strip() == count(expected), fig
    finally:
        wh.close()
    shown = {r["data-entity"] for r in page.rows["exception"]}
    for a in on_postgres.anomalies:
        entity = a.get("payment_id") if a["kind"] == "orphan_payment" else a.get("payout_id") or a.get("order_id")
        if a["kind"] == "non_numeric_amount":
            entity = a["id"]
        if a["kind"] in ("duplicate_across_pages", "unknown_field"):
            continue
        assert entity in shown, a
    assert len(shown) == 5
