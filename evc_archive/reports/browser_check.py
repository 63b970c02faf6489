"""Open a report in a real headless Chromium (selenium + the distribution's chromedriver) and check
what a person opening it would get: the page loads, the console has no errors, every image
decodes, nothing is fetched from anywhere; and take a full-page screenshot.

Needs the `browser` extra (selenium) and `apt-get install chromium chromium-driver`.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Flags for a machine without a screen or network: no sandbox as root, no GPU, no background
# connections (refused on a closed network, and they would show up as console noise).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")

_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
Promise.all(imgs.map(i => i.decode().then(() => true, () => false))).then(ok => done(
  imgs.map((img, k) => ({alt: img.alt, decoded: ok[k] && img.complete && img.naturalWidth > 0,
                         width: img.naturalWidth, height: img.naturalHeight}))));
"""


@dataclass(frozen=True)
class BrowserCheck:
    title: str
    console_errors: tuple[str, ...]
    images: int
    images_not_decoded: tuple[str, ...]  # alt texts
    network_requests: tuple[str, ...]  # resources fetched other than data: URIs
    page_height: int

    @property
    def ok(self) -> bool:
        return bool(self.title) and not self.console_errors and not self.images_not_decoded \
            and not self.network_requests and self.images > 0


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def check_page(html_path: Path, screenshot: Path | None = None, width: int = 1200,
               max_height: int = 20000) -> BrowserCheck:
    """Load html_path (file://) in headless Chromium; optionally write a full-page PNG screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    chromium, chromedriver = found
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},900")
    with tempfile.TemporaryDirectory(prefix="evc-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(chromedriver))
        try:
            driver.set_script_timeout(60)
            driver.get(Path(html_path).resolve().as_uri())
            images = driver.execute_async_script(_IMAGES_JS)
            resources = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            errors = tuple(e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE")
            title = driver.title
            if screenshot is not None:
                shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}})
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        finally:
            driver.quit()
    return BrowserCheck(title=title, console_errors=errors, images=len(images),
                        images_not_decoded=tuple(i["alt"] for i in images if not i["decoded"]),
                        network_requests=tuple(r for r in resources if not r.startswith("data:")),
                        page_height=height)
