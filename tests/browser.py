"""Headless Chromium for tests: Debian's `chromium` driven through Debian's `chromedriver` by
selenium (nothing downloads a browser; `make browser`, a prerequisite of `make test`, installs
the two packages when missing).

The network is off for every page: DevTools' offline mode for the page's own requests, and a
proxy on a closed loopback port for anything else, so only file://, data: and loopback URLs load
(a local docs server on 127.0.0.1 still works with `open(url, offline=False)`). Chromium's own
background traffic is switched off by its flags. Use the `browser` fixture (tests/conftest.py):

    page = browser.open(path_or_url)           # waits for the load event
    page.console_errors                        # SEVERE console entries (script errors, failed loads)
    page.external_requests                     # URLs the page tried to fetch beyond file:/data:
    browser.query("section#summary .tile")     # selenium WebElements
    browser.js("return document.title")
    browser.screenshot("report-desktop")       # full page PNG under ARTIFACTS; returns its path
    browser.resize(390, 844)                   # a phone
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Screenshots and other browser artifacts of the last test run (git-ignored: under data/).
ARTIFACTS = ROOT / "data" / "test-artifacts" / "browser"

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--mute-audio", "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
    # nothing but loopback gets out: Chromium bypasses a proxy for loopback, and port 9 is closed
    "--proxy-server=http://127.0.0.1:9", "--force-color-profile=srgb", "--lang=en-IN",
)
LOCAL = re.compile(r"^(file|data|blob|about|chrome|devtools):|^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/]")


class BrowserMissing(RuntimeError):
    pass


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@dataclass
class Page:
    url: str
    console_errors: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium; `open` a page, then query, run JavaScript, take screenshots."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        if not available():
            raise BrowserMissing(
                f"headless Chromium is not installed ({CHROMIUM} and {CHROMEDRIVER}): run `make browser` "
                "(apt-get install -y chromium chromium-driver)")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        # an explicit driver path: selenium's driver manager (which downloads) never runs
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(60)
        self.page: Page | None = None

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- pages ----------------------------------------------------------------------------
    def open(self, target: str | Path, *, offline: bool = True) -> Page:
        """Load a local file (path) or URL with the network off and wait for the load event; returns
        the page's console errors and the requests it tried to send beyond the machine."""
        url = Path(target).resolve().as_uri() if not str(target).startswith(("http:", "https:", "file:")) else str(target)
        self._drain()
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        self.driver.get(url)
        self.js("return document.readyState")  # get() returns after the load event
        page = Page(url)
        self._collect(page)
        self.page = page
        return page

    def refresh_logs(self) -> Page:
        """Collect console entries and requests since the last look (e.g. after a click)."""
        assert self.page is not None, "open a page first"
        self._collect(self.page)
        return self.page

    def _drain(self) -> None:
        for kind in ("browser", "performance"):
            try:
                self.driver.get_log(kind)
            except Exception:
                pass

    def _collect(self, page: Page) -> None:
        for entry in self.driver.get_log("browser"):
            page.console.append(entry)
            if entry.get("level") == "SEVERE":
                page.console_errors.append(entry.get("message", ""))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if not LOCAL.match(url):
                    page.external_requests.append(url)

    # -- looking at it ----------------------------------------------------------------------
    def query(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def resize(self, width: int, height: int) -> None:
        """The viewport's size in CSS pixels (a phone: 390 × 844)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700})

    def screenshot(self, name: str, *, full_page: bool = True, folder: Path | None = None) -> Path:
        """Save a PNG of the page (all of it by default) as `<folder or ARTIFACTS>/<name>.png`."""
        import base64

        folder = folder or ARTIFACTS
        folder.mkdir(parents=True, exist_ok=True)
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", params)["data"]
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(data))
        return path

    def print_pdf(self, name: str, folder: Path | None = None) -> Path:
        """The page as printed (A4, print styles), as `<folder or ARTIFACTS>/<name>.pdf`."""
        import base64

        folder = folder or ARTIFACTS
        folder.mkdir(parents=True, exist_ok=True)
        data = self.driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True})["data"]
        path = folder / f"{name}.pdf"
        path.write_bytes(base64.b64decode(data))
        return path
