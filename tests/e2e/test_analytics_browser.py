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


def test_maintainers_report_page_in_the_browser(browser, fixture_index, real_embedder, tmp_path):
    """The maintainers' page: asked for a password, then the unanswered questions first, most asked first;
    usable from the keyboard without a script; no serious axe violation in either theme."""
    import base64
    import json

    from kb.store import SearchEvent, Store, new_search_id
    from tests.e2e.test_browser import run_axe, scheme, shot

    token = "maintainers-only-password-1234"
    db = tmp_path / "analytics.sqlite3"
    store = Store(f"sqlite:///{db}", 180)
    store.ensure_schema()
    asked = {("night shift survival f1", "related"): 3, ("usmle step 1 passing score", "not_covered"): 2}
    store.write(
        SearchEvent(new_search_id(), q, "hybrid", 3, 9.0, coverage=v) for (q, v), n in asked.items() for _ in range(n)
    )
    store.dispose()
    app = create_app(
        {
            "KB_CONTENT_DIR": str(FIXTURE_CONTENT),
            "KB_INDEX_DIR": str(fixture_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{db}",
            "KB_MAINTAINER_TOKEN": token,
        },
        embedder=real_embedder,
    )
    with threaded_server(app) as base:
        load(browser, base + "/maintainers/report")  # the browser asks for a password: nothing of the report shows
        assert "night shift survival" not in browser.page_source
        browser.execute_cdp_cmd("Network.enable", {})
        auth = "Basic " + base64.b64encode(f"maintainer:{token}".encode()).decode()
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": auth}})
        try:
            load(browser, base + "/maintainers/report")
            found = browser.find_elements(By.CSS_SELECTOR, "#report-unanswered ~ ol .gap-question")
            questions = [h.text for h in found]
            assert questions == ["night shift survival f1", "usmle step 1 passing score"]
            link = browser.find_element(By.CSS_SELECTOR, ".gap a")
            assert urlsplit(link.get_attribute("href")).path.startswith("/guides/")
            for theme in ("light", "dark"):
                scheme(browser, theme)
                result = run_axe(browser)
                assert "error" not in result, result
                serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
                assert serious == [], json.dumps(serious, indent=2)
                shot(browser, f"maintainers-report-{theme}", full_page=False)
            scheme(browser, "light")
            # the period is a plain form: label, field, Enter
            box = browser.find_element(By.ID, "report-days")
            assert browser.find_element(By.CSS_SELECTOR, "label[for=report-days]").text == "Days to report on"
            box.clear()
            box.send_keys("7", Keys.ENTER)
            wait_for(browser, lambda d: "days=7" in d.current_url, "the form to load the 7-day report")
            assert "The last 7 days" in browser.find_element(By.CLASS_NAME, "report-period").text
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
