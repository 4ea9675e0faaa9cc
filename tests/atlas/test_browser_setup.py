"""The atlas browser tests' browser: without one they skip with one line saying how to get one,
except under CI=true, where they fail; ``tests/helpers/browser.py --check`` tells make what was found."""

import subprocess
import sys

import pytest

from helpers import REPO, browser


@pytest.fixture
def no_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: nothing to find
    monkeypatch.setenv("RESSTREAM_CHROME", str(tmp_path / "no-chrome"))
    monkeypatch.setenv("RESSTREAM_CHROMEDRIVER", str(tmp_path / "no-driver"))


def test_without_a_browser_the_tests_skip_with_one_line_naming_how_to_get_one(no_browser, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        browser.start_chromium()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "no browser for the atlas tests (none found on PATH or at RESSTREAM_CHROME, RESSTREAM_CHROMEDRIVER)"
    )
    assert "apt-get install chromium chromium-driver" in message and "RESSTREAM_CHROME" in message


def test_under_ci_a_missing_browser_fails(no_browser, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="need a browser under CI=true"):
        browser.start_chromium()


def test_a_browser_that_does_not_start_is_reported_in_one_line(tmp_path, no_browser, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    fake = tmp_path / "chromedriver"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RESSTREAM_CHROMEDRIVER", str(fake))
    with pytest.raises(pytest.skip.Exception) as info:
        browser.start_chromium()
    assert f"with {fake} did not start" in str(info.value) and "\n" not in str(info.value)


def test_check_names_what_it_found_or_the_fix(no_browser, tmp_path):
    proc = subprocess.run(
        [sys.executable, "tests/helpers/browser.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stdout.startswith("the atlas browser tests will be skipped")
    chrome, driver = tmp_path / "chrome", tmp_path / "chromedriver"
    for f in (chrome, driver):
        f.write_text("#!/bin/sh\n")
    env = {"PATH": str(tmp_path), "RESSTREAM_CHROME": str(chrome), "RESSTREAM_CHROMEDRIVER": str(driver)}
    proc = subprocess.run(
        [sys.executable, "tests/helpers/browser.py", "--check"], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert (proc.returncode, proc.stdout) == (0, f"atlas browser tests: {chrome} with {driver}\n")
