"""A headless Chrome or Chromium driven through Selenium, for the atlas tests.  Pages are opened from
the file system (file://), as a researcher opens the atlas.

Any Chrome or Chromium Selenium can drive will do: Debian's chromium + chromium-driver (what
``make test`` installs as root), Google Chrome, or the binaries named by ``RESSTREAM_CHROME`` and
``RESSTREAM_CHROMEDRIVER``.  Without one the browser tests are skipped with one line saying how to
get one; under ``CI=true`` they are required and fail instead.

``python tests/helpers/browser.py --check`` prints what was found (exit 0) or how to get one (exit 1).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# The flags the workplace documents for a closed network: no background connections, no GPU.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1000",
)
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER_APPS = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
DRIVER_NAMES = ("chromedriver", "chromium.chromedriver")  # the second: Ubuntu's snap
INSTALL_HINT = (
    "install Chrome or Chromium and its chromedriver (Debian/Ubuntu: apt-get install chromium chromium-driver, "
    "which make test does as root; macOS: brew install --cask google-chrome chromedriver), or set "
    "RESSTREAM_CHROME and RESSTREAM_CHROMEDRIVER to them"
)


def _first(env: str, names, paths=()) -> str | None:
    if os.environ.get(env):  # a wrong path counts as none found (the hint names the variable)
        return os.environ[env] if os.path.isfile(os.environ[env]) else None
    found = [shutil.which(n) for n in names] + [p for p in paths if os.path.isfile(p)]
    return next((f for f in found if f), None)


def find_browser() -> tuple[str | None, str | None]:
    """``(browser, chromedriver)`` paths; either may be None (Selenium then looks for the rest)."""
    return _first("RESSTREAM_CHROME", BROWSER_NAMES, BROWSER_APPS), _first("RESSTREAM_CHROMEDRIVER", DRIVER_NAMES)


def browser_unavailable(why: str):
    """Skip (fail under CI=true, where the atlas must be checked in a browser) with one line."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the atlas browser tests need a browser under CI=true, but {why}: {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"no browser for the atlas tests ({why}): {INSTALL_HINT}")


def start_chromium():
    """A Selenium driver of a fresh headless Chrome/Chromium with its own empty profile."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    if chromium is None and driver is None:
        browser_unavailable("none found on PATH or at RESSTREAM_CHROME, RESSTREAM_CHROMEDRIVER")
    options = webdriver.ChromeOptions()
    if chromium:
        options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="resstream-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    try:
        browser = webdriver.Chrome(service=Service(driver) if driver else Service(), options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        text = (exc.msg or str(exc)).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        browser_unavailable(
            f"{chromium or 'Chrome'} with {driver or 'a driver Selenium finds'} did not start: {first_line}"
        )
    browser.set_page_load_timeout(60)
    browser._resstream_profile = profile
    return browser


def stop_chromium(browser) -> None:
    browser.quit()
    shutil.rmtree(browser._resstream_profile, ignore_errors=True)


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()


def wait_for_images(browser, timeout: float = 30) -> list[dict]:
    """Wait until every <img> finished loading; return src, complete and naturalWidth of each."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda b: b.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    return browser.execute_script(
        "return Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}))"
    )


def visible_channels(browser) -> list[int]:
    """Channels of the block table's rows that are shown, in display order."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#channels tbody tr')).filter(r => !r.hidden)"
        ".map(r => parseInt(r.dataset.channel))"
    )


def column_values(browser, key: str) -> list[str]:
    """data-value of one column over the shown rows, in display order."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#channels tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.querySelector('td[data-key=\"' + arguments[0] + '\"]').dataset.value)",
        key,
    )


def unit_numbers(browser) -> dict[tuple[str, str], str]:
    """{(stimulus, key): shown text} of a unit page's numbers table."""
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('#numbers td[data-key]'))"
        ".map(c => [c.dataset.stimulus, c.dataset.key, c.textContent])"
    )
    return {(s, k): text for s, k, text in cells}


def assert_shown_equals(shown: str, value, where: str):
    """A number as the atlas prints it (6 significant digits, '—' for NaN, yes / no) equals the table's."""
    if isinstance(value, (bool, np.bool_)):
        assert shown == ("yes" if value else "no"), where
    elif isinstance(value, (float, np.floating, int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            assert shown == "—", where
        else:
            assert float(shown) == pytest.approx(float(value), rel=1e-5, abs=1e-12), where
    else:
        assert shown == str(value), where


if __name__ == "__main__":  # make browser: is there one?
    if sys.argv[1:] == ["--check"]:
        found_browser, found_driver = find_browser()
        if found_browser and found_driver:
            print(f"atlas browser tests: {found_browser} with {found_driver}")
            sys.exit(0)
        print(f"the atlas browser tests will be skipped (required under CI=true): {INSTALL_HINT}")
        sys.exit(1)
