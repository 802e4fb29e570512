"""A headless Chromium driven through Selenium, as the tests of pages, Open WebUI and browser
attacks use it: Debian's chromium and chromium-driver, which .ci/run installs."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
)


@contextmanager
def headless_chromium(*flags: str) -> Iterator[webdriver.Chrome]:
    """A new browser with a new profile (a first visit), with ``flags`` besides the usual."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, *flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
