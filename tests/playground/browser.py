"""A real headless Chromium (Debian's `chromium` + `chromium-driver`, installed by scripts/install.sh), driven
by Selenium. A missing browser fails the test with how to install it: the page is only tested in a browser."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Screenshots the README and docs show, rewritten by every run so they show the page as it is.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: No sandbox (CI runs as root), no GPU, and none of the browser's own traffic: this machine has no internet,
#: and without the background-networking flags Chromium keeps opening connections that fail.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1700", "--autoplay-policy=no-user-gesture-required",
         # a microphone that plays a test tone, allowed without a prompt: recording speech in the page
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@contextmanager
def chromium() -> Iterator:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run scripts/install.sh as root, or "
                    "`sudo apt-get install -y chromium chromium-driver` (Debian/Ubuntu)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="infinitetalk-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def page_errors(driver) -> list[str]:  # noqa: ANN001 - a selenium WebDriver
    """The page's script errors so far (a broken module shows here first). Answers the page expects, such as
    the 401 before a key is saved, are logged by Chromium as 'Failed to load resource' and left out."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
