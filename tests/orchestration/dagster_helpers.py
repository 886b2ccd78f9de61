"""Running the Dagster code location as a user's deployment does: each run in its own process
(`dagster job execute` against a persistent instance in a temporary DAGSTER_HOME), configured
through the environment only (the pipeline's one configuration path), so parallel shards are
parallel processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instamojo_sandbox import Sandbox
from instamojo_sandbox.config import DEMO_APP
from tests.oauth_flow import obtain_tokens
from tests.pipeline_helpers import POSTGRES_DSN

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
# lookbacks over the whole history and the catalogue read whole every run: "equal to the truth"
# is exact although the sandbox's clock moves days while the wall clock moves seconds
WHOLE_HISTORY = {**{f"{family}_lookback_days": 90 for family in ("payments", "payouts", "products", "orders")},
                 "products_full_read_hours": 0}


@dataclass
class Deployment:
    """A temporary DAGSTER_HOME and the environment pointing the code location at a sandbox."""

    env: dict[str, str]
    home: Path
    raw_dataset: str
    marts_dataset: str
    merchants: list[str] = field(default_factory=list)

    def instance(self) -> Any:
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))

    def start(self, job: str, partition: str | None = None, config: dict | None = None) -> subprocess.Popen:
        """`dagster job execute` in its own process (in-process executor: one run, one process)."""
        run_config = {"execution": {"config": {"in_process": {}}}, **(config or {})}
        config_file = self.home / f"run-{uuid.uuid4().hex[:8]}.json"
        config_file.write_text(json.dumps(run_config))
        cmd = [DAGSTER, "job", "execute", "-m", "orchestration.definitions", "-j", job, "-c", str(config_file)]
        if partition:
            cmd += ["--tags", json.dumps({"dagster/partition": partition})]
        return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run_parallel(self, job: str, partitions: Sequence[str | None], config: dict | None = None
                     ) -> list[tuple[int, str]]:
        """Start every run at once, wait for all; returns (exit code, output) of each."""
        procs = [self.start(job, p, config) for p in partitions]
        return [(p.wait(timeout=600), p.stdout.read() if p.stdout else "") for p in procs]


def deployment_for(sandbox: Sandbox, tmp_path: Path, *, shards: int, destination: str = "postgres",
                   **source_options: Any) -> Deployment:
    """A deployment syncing every merchant of `sandbox` in `shards` shards: into fresh Postgres
    schemas, all shards at once; or into a DuckDB file under `tmp_path` (published copy
    `warehouse.duckdb`), one shard at a time. Tokens from the sandbox's real consent page."""
    suffix = uuid.uuid4().hex[:8]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    merchants = list(sandbox.merchants)
    options = {"page_size": sandbox.config.page_size, **WHOLE_HISTORY, **source_options}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INSTAMOJO_ELT__", "DESTINATION__",
                                                                    "ORCHESTRATION__", "TRANSFORMS__", "CHECKS__"))}
    env.update({
        # this checkout's packages first (the virtualenv may hold an editable install of another)
        "PYTHONPATH": str(REPO),
        "DAGSTER_HOME": str(home),
        "SOURCES__INSTAMOJO__BASE_URL": sandbox.base_url,
        "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_APP.client_id,
        "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_APP.client_secret,
        "SOURCES__INSTAMOJO__MERCHANTS": ",".join(merchants),
        "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": str(tmp_path / "tokens"),
        "INSTAMOJO_ELT__DESTINATION": destination,
        "INSTAMOJO_ELT__DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_DSN,
        "INSTAMOJO_ELT__RAW_DATASET": f"t{suffix}_raw",
        "INSTAMOJO_ELT__MARTS_DATASET": f"t{suffix}_marts",
        "INSTAMOJO_ELT__PIPELINES_DIR": str(tmp_path / "pipelines"),
        "ORCHESTRATION__SHARDS": str(shards),
        "ORCHESTRATION__MAX_PARALLEL_SHARDS": str(shards if destination == "postgres" else 1),
        "TRANSFORMS__AS_OF": sandbox.now.isoformat(),
        "CHECKS__FRESHNESS_MAX_AGE_HOURS": "0",
        "CHECKS__DOCS_DIR": "",
        "DAGSTER_DBT_TERMINATION_TIMEOUT_SECONDS": "25",
    })
    for name, value in options.items():
        env[f"SOURCES__INSTAMOJO__{name.upper()}"] = str(value)
    for merchant in merchants:
        env[f"SOURCES__INSTAMOJO__REFRESH_TOKENS__{merchant.upper()}"] = obtain_tokens(sandbox, merchant)["refresh_token"]
    deployment = Deployment(env, home, f"t{suffix}_raw", f"t{suffix}_marts", merchants)
    # the instance's SQLite storage created once, before runs in parallel processes open it
    deployment.instance().get_runs(limit=1)
    return deployment


def drop_schemas(deployment: Deployment) -> None:
    """Remove what a deployment created in Postgres (raw, staging per pipeline, marts, dbt's)."""
    from transforms.warehouse import Warehouse

    wh = Warehouse.postgres(POSTGRES_DSN)
    try:
        _, rows = wh.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s "
                           "OR schema_name LIKE %s", (f"{deployment.raw_dataset}%", f"{deployment.marts_dataset}%"))
        for (schema,) in rows:
            wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        wh.close()
