"""Headless Chromium (Debian's chromium + chromium-driver) driven through Selenium, for the atlas
tests.  Pages are opened from the file system (file://), as a researcher opens the atlas."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# The flags the workplace documents for a closed network: no background connections, no GPU.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1300,1000",
)
INSTALL_HINT = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; make test does it as root)"


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"headless Chromium is missing (chromium: {chromium}, chromedriver: {driver}): {INSTALL_HINT}")
    return chromium, driver


def start_chromium():
    """A Selenium driver of a fresh headless Chromium with its own empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="resstream-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(driver), options=options)
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
        ".map(r => r.querySelector('td[data-key=\"' + arguments[0] + '\"]').dataset.value)", key
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
