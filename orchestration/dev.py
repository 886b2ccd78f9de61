"""`make dagster`: `dagster dev` on 127.0.0.1 for the configured warehouse (docs/orchestration.md).

Its instance lives in data/dagster (DAGSTER_HOME), with a dagster.yaml written here: the pool
`instamojo_shards` limited to `[orchestration] max_parallel_shards`, the limit the shards' share of
the app-wide rate limit is computed with. When no app and merchants are configured, it starts the
demo's sandbox first (as `make demo` does: its merchants authorized through its real OAuth
pages, everything under data/dagster-demo) and points the code location at it; the sandbox
stops when `dagster dev` does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pipelines.config import ConfigError, load_settings

from .shards import POOL, OrchestrationSettings

DAGSTER_HOME = Path("data/dagster")
DEMO_DIR = Path("data/dagster-demo")


def dagster_yaml(max_parallel_shards: int) -> str:
    """The local instance's configuration: SQLite storage under DAGSTER_HOME, the shards' pool."""
    return (
        "# written by `make dagster` (orchestration/dev.py); production: docs/orchestration.md\n"
        "concurrency:\n"
        "  pools:\n"
        f"    # {POOL}: shards running at once ([orchestration] max_parallel_shards)\n"
        f"    default_limit: {max_parallel_shards}\n"
        "  runs:\n"
        "    # one run per shard at a time (an hourly and the nightly run of a shard queue)\n"
        "    tag_concurrency_limits:\n"
        "      - key: instamojo/shard\n"
        "        value:\n"
        "          applyLimitPerUniqueValue: true\n"
        "        limit: 1\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


@contextlib.contextmanager
def demo_environment() -> Iterator[dict[str, str]]:
    """Start the sandbox, authorize its merchants; yields the environment pointing at them."""
    import requests

    from pipelines.authorize import authorize_merchant
    from pipelines.demo import (
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        _free_port,
        demo_settings,
        play_browser,
        running_sandbox,
    )

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    redirect_uri = f"http://127.0.0.1:{_free_port()}/oauth2/callback"
    with running_sandbox("--size", "demo", redirect_uri=redirect_uri) as base_url:
        merchants = tuple(m["username"] for m in requests.get(f"{base_url}/_sandbox/merchants", timeout=10).json())
        settings = demo_settings(base_url, merchants).with_overrides(token_store_path=(DEMO_DIR / "tokens").resolve())
        for merchant in merchants:
            with contextlib.redirect_stderr(io.StringIO()):
                authorize_merchant(settings, merchant, redirect_uri=redirect_uri, open_browser=False,
                                   on_url=play_browser(merchant), timeout=60)
        print(f"sandbox at {base_url}; merchants {', '.join(merchants)} authorized", flush=True)
        yield {
            "SOURCES__INSTAMOJO__BASE_URL": base_url,
            "SOURCES__INSTAMOJO__CLIENT_ID": DEMO_CLIENT_ID,
            "SOURCES__INSTAMOJO__CLIENT_SECRET": DEMO_CLIENT_SECRET,  # the sandbox's public demo app
            "SOURCES__INSTAMOJO__TOKEN_STORE_PATH": str(settings.token_store_path),
            "INSTAMOJO_ELT__DUCKDB_PATH": str((DEMO_DIR / "warehouse.duckdb").resolve()),
            "INSTAMOJO_ELT__PIPELINES_DIR": str((DEMO_DIR / "pipelines").resolve()),
            # the sandbox's data is dated in its own clock
            "TRANSFORMS__AS_OF": "latest_activity",
            "CHECKS__FRESHNESS_MAX_AGE_HOURS": "0",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dagster", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the web UI's port (default 3000)")
    parser.add_argument("--sandbox", action="store_true", help="use the demo's sandbox even when configured")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        orchestration = OrchestrationSettings.load(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    home = DAGSTER_HOME.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml(orchestration.max_parallel_shards))
    configured = bool(settings.client_id and settings.client_secret and settings.merchants)
    env_source: contextlib.AbstractContextManager[dict[str, str]] = (
        contextlib.nullcontext({}) if configured and not args.sandbox else demo_environment())
    with env_source as extra:
        if not extra:
            print(f"configured warehouse: {settings.destination}; {len(settings.merchants)} merchant(s)", flush=True)
        env = {**os.environ, **extra, "DAGSTER_HOME": str(home)}
        cmd = [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(args.port)]
        proc = subprocess.Popen(cmd, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C: `dagster dev` stops its web server, daemon and code servers (a signal to this
            # process alone, not the terminal's group, reaches it here)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.terminate()
            return 0


if __name__ == "__main__":
    sys.exit(main())
