"""The dbt profile the pipeline generates from its configuration: the right connection for each
database, no hand-written profiles.yml, and the Postgres password never written anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.transforms.conftest import drop_env, postgres_env
from transforms import dbt as transforms_dbt
from transforms.dbt import build, profile_yaml
from transforms.warehouse import WarehouseTarget


def test_duckdb_profile_points_at_the_file():
    target = WarehouseTarget("duckdb", "instamojo_raw", "instamojo", duckdb_path=Path("/data/instamojo.duckdb"))
    profile, env = profile_yaml(target)
    output = json.loads(profile)["instamojo_reconciliation"]["outputs"]["pipeline"]
    assert output == {"type": "duckdb", "path": "/data/instamojo.duckdb", "schema": "instamojo", "threads": 1}
    assert env == {}


def test_postgres_profile_keeps_the_password_out_of_the_file():
    target = WarehouseTarget("postgres", "raw", "marts",
                             postgres_dsn="postgresql://loader:s3cr%40t@db.example:6543/warehouse?sslmode=require")
    profile, env = profile_yaml(target)
    output = json.loads(profile)["instamojo_reconciliation"]["outputs"]["pipeline"]
    assert (output["host"], output["port"], output["user"], output["dbname"], output["schema"], output["sslmode"]) == (
        "db.example", 6543, "loader", "warehouse", "marts", "require")
    assert "s3cr" not in profile
    assert output["password"] == "{{ env_var('DBT_ENV_SECRET_INSTAMOJO_PG_PASSWORD') }}"
    assert env == {"DBT_ENV_SECRET_INSTAMOJO_PG_PASSWORD": "s3cr@t"}
    assert "s3cr" not in repr(target)


def test_postgres_dsn_options_dbt_cannot_take_are_refused():
    target = WarehouseTarget("postgres", "raw", "marts", postgres_dsn="postgresql://u@h/d?target_session_attrs=any")
    with pytest.raises(ValueError, match="target_session_attrs"):
        profile_yaml(target)


@pytest.mark.postgres
def test_a_postgres_build_writes_the_password_nowhere(tmp_path, monkeypatch):
    """Trust auth ignores the password, so any will do: it must not reach dbt's files or the report."""
    env = postgres_env()
    secret = "Not-In-Any-File-7f3a"
    try:
        env.create_raw()
        target = WarehouseTarget("postgres", env.raw, env.marts,
                                 postgres_dsn=f"postgresql://postgres:{secret}@127.0.0.1:5432/test")
        monkeypatch.setattr(transforms_dbt, "_MANIFESTS", {})  # parse again: dbt writes its files
        report = build(target, work_dir=tmp_path / "dbt")
        assert secret not in report.summary()
        written = [p for p in (tmp_path / "dbt").rglob("*") if p.is_file()]
        assert written, "dbt wrote nothing to its work dir"
        assert not [p for p in written if secret.encode() in p.read_bytes()]
    finally:
        drop_env(env)
