"""Shared by the personal-data tests: a small sandbox of three merchants, `sync` run as a real
process configured by environment variables, and the sandbox buyers' plaintext to search for."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import duckdb

from instamojo_sandbox import Sandbox, SandboxConfig
from tests.pipeline.test_cli import sync_env

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-pii-key-0123456789abcdef-not-for-production"
OTHER_KEY = "another-test-pii-key-9876543210fedcba"
PERSONAL_COLUMNS = {
    "payments": ("name", "email", "phone"),
    "orders": ("buyer_name", "buyer_email", "buyer_phone", "buyer_address", "buyer_city", "buyer_state", "buyer_zip"),
    "user_contact": ("full_name", "email", "phone"),
    "user_info": ("full_name",),
}


def small_sandbox() -> Sandbox:
    """Three merchants, a week of a few payments a day: a sync takes seconds."""
    return Sandbox(SandboxConfig(seed=15, profile="small", merchants=3, days=7, payments_per_day=6, page_size=50))


def cli(folder: Path, *args: str, env: dict[str, str], stdin: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m pipelines …` in `folder` (a project folder of its own), as cron runs it."""
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=folder, env=env, capture_output=True, check=False,
                          text=True, timeout=timeout, input=stdin)


def project_env(sb: Sandbox, folder: Path, **personal: str) -> dict[str, str]:
    """A scheduled job's environment for `folder`, with `[sources.instamojo.personal_data]`
    given as environment variables (`pii_key=` sets the key)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = sync_env(sb, folder, sb.merchants)
    env = {k: v for k, v in env.items() if not k.startswith("SOURCES__INSTAMOJO__PERSONAL_DATA__")}
    env.pop("SOURCES__INSTAMOJO__PII_KEY", None)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # no request leaves the machine
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name, value in personal.items():
        if name == "pii_key":
            env["SOURCES__INSTAMOJO__PII_KEY"] = value
        else:
            env[f"SOURCES__INSTAMOJO__PERSONAL_DATA__{name.upper()}"] = value
    return env


def buyers_plaintext(sb: Sandbox, merchants: Iterable[str] | None = None) -> set[str]:
    """Every email and phone number (both spellings) the sandbox serves for these merchants'
    buyers, and the merchants' own."""
    found: set[str] = set()
    for m in merchants or sb.merchants:
        for p in sb.truth(m, "payments"):
            found |= {p["email"], p["phone"], p["phone"][3:]}
        for o in sb.truth(m, "orders"):
            found |= {o["buyer_email"], o["buyer_phone"]}
        contact = sb.truth(m, "user_contact")
        found |= {contact["email"], contact["phone"]}
    return {v for v in found if v and len(v) >= 8}


def emails(sb: Sandbox, merchant: str) -> set[str]:
    return {p["email"] for p in sb.truth(merchant, "payments")} | {o["buyer_email"] for o in sb.truth(merchant, "orders")}


def leaks(haystack: bytes, needles: Iterable[str]) -> list[str]:
    return sorted(n for n in needles if n.encode() in haystack)


def folder_bytes(folder: Path) -> bytes:
    """Every file under `folder`, recursively, concatenated."""
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()
