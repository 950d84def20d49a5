"""Browser fixtures: the real app on a loopback port over a real-model index of the real guides, and headless Chromium.

Chromium and chromedriver come from Debian's packages (`scripts/ensure_test_services.sh` installs them); nothing is
downloaded: Selenium is handed the driver and browser paths, so Selenium Manager never runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app import create_app
from benchmarks.serving import threaded_server
from kb.index.build import build_index
from tests.conftest import ROOT, content_today

# belt and braces: Selenium is handed both paths below, and Selenium Manager must never fetch a driver or browser
os.environ.setdefault("SE_OFFLINE", "true")

CONTENT = ROOT / "content"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM = os.environ.get("KB_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("KB_TEST_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP = (1280, 900)


@pytest.fixture(scope="session")
def site_index(tmp_path_factory, real_embedder) -> Path:
    """The real guides in content/ indexed with the real model: what a student searches."""
    index = tmp_path_factory.mktemp("site-index")
    build_index(CONTENT, index, real_embedder, today=content_today())
    return index


@pytest.fixture(scope="session")
def site_app(site_index, real_embedder, tmp_path_factory):
    return create_app(
        {
            "KB_CONTENT_DIR": str(CONTENT),
            "KB_INDEX_DIR": str(site_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_LOG_SEARCHES": False,
            # banners judged on the day the guides are current, not the machine's
            "KB_TODAY": content_today().isoformat(),
        },
        embedder=real_embedder,
    )


@pytest.fixture(scope="session")
def live_server(site_app):
    """The app served by werkzeug's threaded server on a free loopback port; yields its base URL."""
    with threaded_server(site_app) as base:
        site_app.extensions["kb"].warm_up()
        yield base


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (p and os.path.exists(p))]
    if missing:
        pytest.fail(
            f"headless Chromium is needed for the browser tests but {', '.join(missing)} is missing: "
            "run `bash scripts/ensure_test_services.sh` as root on Debian, or `apt-get install chromium "
            "chromium-driver`",
            pytrace=False,
        )


def make_driver(tmp_path_factory, javascript: bool = True):
    """A fresh headless Chromium session from the system packages; nothing is downloaded."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--lang=en-GB",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(ARTIFACTS / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One Chromium session reused by every browser test (each test resets what it changes)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = make_driver(tmp_path_factory)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def browser_nojs(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = make_driver(tmp_path_factory, javascript=False)
    yield driver
    driver.quit()
