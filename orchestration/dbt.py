"""The dbt project (transforms/) for dagster-dbt: its manifest, parsed for the configured
warehouse when the code location loads, a generated profile for each run, and how dbt's nodes
map to asset keys (dbt's `instamojo` sources are the raw assets the shards materialize)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.steps import dbt_work_dir
from pipelines.warehouse import warehouse_target
from transforms import ReconciliationSettings
from transforms.dbt import (
    PROJECT_DIR,
    _database_key,
    dbt_vars,
    profile_yaml,
    project_fingerprint,
)
from transforms.warehouse import WarehouseTarget

RAW_PREFIX = "raw"  # raw tables are assets raw/<table>; dbt models <layer>/<model>


def work_dir(settings: Settings) -> Path:
    """Where Dagster's dbt runs keep their target/ and logs (beside the CLI's)."""
    return dbt_work_dir(settings) / "dagster"


def manifest_path(settings: Settings) -> Path:
    """dbt's manifest.json for this warehouse, parsed when missing or stale. Parsing bakes in the
    database and the schemas, so the manifest is keyed by them and by the project's files; a
    file lock keeps the processes that load the code location at once (each step of the
    multiprocess executor does) from parsing over each other."""
    target = warehouse_target(settings)
    recon = ReconciliationSettings.from_dlt_config()
    variables = dbt_vars(target, recon)
    key = hashlib.sha256(json.dumps([_database_key(target), {k: v for k, v in variables.items() if k.endswith("_schema")},
                                     project_fingerprint()], default=str).encode()).hexdigest()
    folder = work_dir(settings) / "manifest"
    folder.mkdir(parents=True, exist_ok=True)
    manifest, stamp = folder / "target" / "manifest.json", folder / "manifest.key"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and stamp.exists() and stamp.read_text() == key:
            return manifest
        _parse(target, variables, folder)
        stamp.write_text(key)
    return manifest


def _parse(target: WarehouseTarget, variables: Mapping[str, Any], folder: Path) -> None:
    from dbt.cli.main import dbtRunner

    with profiles_dir(target) as profiles:
        result = dbtRunner().invoke([
            "parse", "--vars", json.dumps(variables), "--project-dir", str(PROJECT_DIR), "--profiles-dir", profiles,
            "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"), "--log-level", "none",
            "--no-send-anonymous-usage-stats", "--no-version-check", "--no-use-colors"])
    if not result.success:
        raise RuntimeError(f"dbt parse of {PROJECT_DIR} failed: {type(result.exception).__name__}: {result.exception}")


@contextmanager
def profiles_dir(target: WarehouseTarget) -> Iterator[str]:
    """A private folder holding the generated profiles.yml; the Postgres password, if any, in a
    `DBT_ENV_SECRET_` environment variable (dbt scrubs those from its logs) while it exists."""
    profile, env = profile_yaml(target)
    folder = tempfile.mkdtemp(prefix="instamojo-dbt-profile-")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        Path(folder, "profiles.yml").write_text(profile)
        os.chmod(Path(folder, "profiles.yml"), 0o600)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def asset_key_path(props: Mapping[str, Any]) -> list[str]:
    """raw/<table> for the raw tables (dbt source `instamojo`); <layer>/<model> (staging, intermediate, marts) for models."""
    if props["resource_type"] == "source":
        # the calendar's input table is written by the pipeline before dbt runs, not by a shard
        return [RAW_PREFIX if props.get("source_name") == "instamojo" else props["source_name"], props["name"]]
    fqn = props.get("fqn") or []
    layer = fqn[1] if len(fqn) > 2 else "dbt"
    return [layer, props["name"]]
