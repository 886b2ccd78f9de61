"""Shared pytest fixtures. Each component keeps its fixtures in its own section below."""

from __future__ import annotations

import pytest

# --- the Instamojo sandbox (instamojo_sandbox/) -------------------------------------------------
from instamojo_sandbox import Sandbox, SandboxConfig

#: Page size of the default ``sandbox`` fixture: small enough that every list has several pages.
SANDBOX_TEST_PAGE_SIZE = 25


@pytest.fixture
def sandbox():
    """A fresh sandbox on a free loopback port: small profile (2 merchants, 21 days, a few
    hundred payments each), seed 1, page size 25, the demo OAuth app. Stopped after the test."""
    with Sandbox(SandboxConfig(seed=1, profile="small", page_size=SANDBOX_TEST_PAGE_SIZE)) as sb:
        yield sb


@pytest.fixture
def sandbox_factory():
    """Start sandboxes with custom configs; every one is stopped after the test.

        sb = sandbox_factory(page_size=5, rotate_refresh_tokens=True)
        sb = sandbox_factory(SandboxConfig(seed=3, profile="demo"))

    Keyword arguments override fields of the given config (default: the small profile).
    """
    started: list[Sandbox] = []

    def make(config: SandboxConfig | None = None, **overrides) -> Sandbox:
        sb = Sandbox(config or SandboxConfig(profile="small"), **overrides)
        started.append(sb)
        return sb.start()

    yield make
    for sb in started:
        sb.stop()


# --- a read-only folder, as a user meets it (a read-only mount) ----------------------------------


@pytest.fixture
def read_only_folder():
    """`make(path, contents={relative: text})` fills `path`, then makes it read-only with a
    read-only bind mount of itself (root, as in CI, writes through mere permissions), falling back
    to chmod for other users. Unmounted after the test."""
    import os
    import subprocess
    from pathlib import Path

    mounted: list[Path] = []

    def make(path, contents=None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for relative, text in (contents or {}).items():
            (path / relative).parent.mkdir(parents=True, exist_ok=True)
            (path / relative).write_text(text)
        if os.geteuid() == 0:
            subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
            mounted.append(path)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        else:
            for p in [path, *path.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o555)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


# --- headless Chromium (tests/browser.py) -------------------------------------------------------
# One browser per test session (per xdist worker); `make browser` installs Debian's chromium and
# chromium-driver, which `make test` does first. Screenshots go to tests.browser.ARTIFACTS.


@pytest.fixture(scope="session")
def _chromium():
    from tests.browser import Browser, BrowserMissing

    try:
        browser = Browser()
    except BrowserMissing as exc:
        pytest.fail(str(exc))
    yield browser
    browser.close()


@pytest.fixture
def browser(_chromium):
    """Headless Chromium with the network off: `browser.open(path_or_url)` returns the page's
    console errors and outside requests; `query`, `js`, `resize`, `screenshot`, `print_pdf`
    (see tests/browser.py)."""
    _chromium.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    yield _chromium
    _chromium.page = None
