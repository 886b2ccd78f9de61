"""examples/analyst_project: an analyst's dbt project that installs transforms/ as a local
package (`dbt deps`, no network), sets the schemas through vars and adds a model on top of
payout_reconciliation; it builds on DuckDB over marts the pipeline built."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.transforms import cases
from tests.transforms.conftest import drop_env, duckdb_env
from transforms.dbt import _DBT_LOCK, PROJECT_DIR, build, profile_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analyst_project"


def test_the_analyst_project_builds_on_the_package(tmp_path):
    env = duckdb_env(tmp_path / "warehouse")
    try:
        env.create_raw()
        cases.load_scenarios(env, ["held", "refund"])
        target = env.warehouse.target(env.raw, env.marts)
        build(target)  # the pipeline's marts, with the calendar it writes first

        project = tmp_path / "analyst_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("dbt_packages", "target", "logs"))
        # the copy installs the package from this repository, as ../../transforms does in place
        (project / "packages.yml").write_text(f"packages:\n  - local: {json.dumps(str(PROJECT_DIR))}\n")
        profile, _ = profile_yaml(target)
        profile = json.loads(profile.replace("instamojo_reconciliation", "analyst_reconciliation"))
        profile["analyst_reconciliation"]["outputs"]["pipeline"]["schema"] = "analytics"
        (tmp_path / "profiles.yml").write_text(json.dumps(profile))

        from dbt.cli.main import dbtRunner

        common = ["--project-dir", str(project), "--profiles-dir", str(tmp_path), "--log-level", "none",
                  "--no-send-anonymous-usage-stats", "--no-version-check"]
        with _DBT_LOCK:
            deps = dbtRunner().invoke(["deps", *common])
            assert deps.success, deps.exception
            built = dbtRunner().invoke(["build", "--select", "analyst_reconciliation", *common])
        assert built.success, [(r.node.name, r.message) for r in built.result.results if r.status != "success"]
        assert {r.node.name for r in built.result.results} >= {"monthly_payout_costs"}

        rows = env.warehouse.query_dicts(
            "SELECT merchant, payout_month, payouts, paid_amount, fees_and_tax, payouts_not_balanced "
            "FROM analytics.monthly_payout_costs ORDER BY merchant")
        assert rows == [
            # held: A (0.00) and B (1457.52) in March; fees 23.00 + 13.00, GST 4.14 + 2.34
            {"merchant": "held", "payout_month": date(2024, 3, 1), "payouts": 2, "paid_amount": Decimal("1457.52"),
             "fees_and_tax": Decimal("42.48"), "payouts_not_balanced": 0},
            # refund: A (972.86) and C (1437.46); fees 23.00 + 53.00, GST 4.14 + 9.54
            {"merchant": "refund", "payout_month": date(2024, 3, 1), "payouts": 2, "paid_amount": Decimal("2410.32"),
             "fees_and_tax": Decimal("89.68"), "payouts_not_balanced": 0},
        ]
    finally:
        drop_env(env)
