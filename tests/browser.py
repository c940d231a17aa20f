"""Headless Chromium through Selenium for the report's browser test and docs/screenshot.py: Debian's chromium and
chromium-driver packages (`make browser` installs them where they are missing; nothing is downloaded at run time:
the driver's path is given, so Selenium Manager never runs)."""

from __future__ import annotations

import os
import shutil

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def missing() -> str | None:
    """Why no browser can start here, or None."""
    if not any(shutil.which(name) for name in CHROMIUM):
        return "no Chromium on PATH (`make browser` installs Debian's chromium and chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (`make browser` installs Debian's chromium-driver)"
    return None


def start(width: int = 1280, height: int = 1000):
    """A headless Chromium, its console kept (driver.get_log('browser'))."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in CHROMIUM if shutil.which(n))
    for flag in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox (CI and these machines run as root)
        options.add_argument("--no-sandbox")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def screenshot(driver, path: str, width: int = 1280, max_height: int = 7000) -> tuple[int, int]:
    """The whole page (up to `max_height` pixels tall) as a PNG at `path`; returns its size."""
    height = min(max_height, int(driver.execute_script("return document.documentElement.scrollHeight")))
    driver.set_window_size(width, height + 140)  # the window's frame: the viewport is a little smaller
    driver.save_screenshot(path)
    return width, height
