"""Search analytics and feedback in real headless Chromium: what search.js and the plain forms record."""

from __future__ import annotations

import sqlite3
import time
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from app import create_app
from benchmarks.serving import threaded_server
from tests.conftest import FIXTURE_CONTENT
from tests.e2e.test_browser import live_results, load, options, type_into, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def tracked(fixture_index, real_embedder, tmp_path):
    """The fixture guides served with analytics on, into a fresh SQLite file; yields (base URL, app, db path)."""
    db = tmp_path / "analytics.sqlite3"
    app = create_app(
        {
            "KB_CONTENT_DIR": str(FIXTURE_CONTENT),
            "KB_INDEX_DIR": str(fixture_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{db}",
        },
        embedder=real_embedder,
    )
    with threaded_server(app) as base:
        yield base, app, db


def rows(app, db, sql, expect=None, timeout=10.0):
    """Query the analytics file once the background writer has caught up (and, with `expect`, until it holds)."""
    deadline = time.monotonic() + timeout
    while True:
        app.extensions["kb_analytics"].recorder.flush(5)
        with sqlite3.connect(db) as conn:
            found = conn.execute(sql).fetchall() if db.exists() else []
        if expect is None or expect(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_dropdown_records_only_the_followed_search(browser, tracked):
    base, app, db = tracked
    load(browser, base + "/guides")
    box = browser.find_element(By.ID, "q")
    box.send_keys("resit the psa")
    live_results(browser, "q-list", "resit the psa")
    href = options(browser, "q-list")[0].get_attribute("href")
    box.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    wait_for(browser, lambda d: urlsplit(d.current_url).path == urlsplit(href).path, "the chosen guide to open")
    clicks = rows(app, db, "select slug, rank from clicks", expect=lambda r: len(r) == 1)
    assert clicks == [(urlsplit(href).path.rsplit("/", 1)[-1], 1)]
    # the keystrokes on the way ("r", "re", ...) were never recorded; the followed search was, with its query
    assert rows(app, db, "select query, source from searches") == [("resit the psa", "live")]


def test_results_page_click_and_enter_are_recorded(browser, tracked):
    base, app, db = tracked
    load(browser, base + "/search?q=study+group")
    first = browser.find_element(By.CSS_SELECTOR, "#results .section-link")
    assert first.get_attribute("ping").startswith("/api/click?s=")
    first.click()
    wait_for(browser, lambda d: "/guides/" in d.current_url, "the result to open")
    assert rows(app, db, "select slug from clicks", expect=lambda r: len(r) == 1) == [
        ("study-groups",)
    ]  # ping and beacon, recorded once
    load(browser, base + "/search?q=psa")
    box = browser.find_element(By.ID, "page-q")
    type_into(browser, box, "ward round")
    wait_for(
        browser,
        lambda d: "ward+round" in d.current_url or "ward%20round" in d.current_url,
        "live results for the new words",
    )
    box.send_keys(Keys.ENTER)
    queries = rows(
        app, db, "select query, source from searches order by id", expect=lambda r: ("ward round", "page") in r
    )
    assert queries == [("study group", "page"), ("psa", "page"), ("ward round", "page")]


def test_feedback_form_in_the_browser(browser, tracked):
    base, app, db = tracked
    load(browser, base + "/guides/psa-resits")
    browser.find_element(By.ID, "feedback-comment").send_keys("Nothing about fees")
    no = browser.find_element(By.CSS_SELECTOR, ".feedback button[value='no']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", no)  # clear of the sticky header
    wait_for(
        browser,
        lambda d: d.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return document.elementFromPoint(r.x + r.width / 2, "
            "r.y + r.height / 2) === arguments[0];",
            no,
        ),
        "the No button to be visible",
    )
    no.click()
    wait_for(browser, lambda d: "feedback=thanks" in d.current_url, "the thank-you page")
    assert "Thank you" in browser.find_element(By.ID, "feedback").text
    assert rows(app, db, "select slug, helpful, comment from feedback") == [("psa-resits", 0, "Nothing about fees")]
