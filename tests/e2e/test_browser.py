"""The site in real headless Chromium: live search, keyboard use, phone width, dark mode, no JavaScript, axe-core.

Every page visited here is also saved as a screenshot under test-artifacts/browser/ (git-ignored) for a person to
look at.
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import contextmanager
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from urllib.request import urlopen

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import ARTIFACTS, AXE_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 15


# ---- helpers ----------------------------------------------------------------------------------
def wait_for(driver, predicate, message: str, timeout: float = WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: predicate(d))
    except TimeoutException:
        shot(driver, "failure-" + message[:40].replace(" ", "-").replace("/", "-"))
        raise AssertionError(f"timed out waiting for: {message} (url {driver.current_url})") from None


def shot(driver, name: str, full_page: bool = True) -> None:
    """Save a PNG of the page (the whole page, not just the viewport) to test-artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})[
            "data"
        ]
        (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(data))
    else:
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def load(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete", f"{url} to load")


def scheme(driver, value: str) -> None:
    """Emulate the system colour preference (light or dark) and forget any theme the reader picked."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"media": "", "features": [{"name": "prefers-color-scheme", "value": value}]}
    )
    if driver.current_url.startswith("http"):
        driver.execute_script(
            "try { localStorage.removeItem('theme'); } catch (e) {} "
            "document.documentElement.removeAttribute('data-theme');"
        )


@contextmanager
def phone(driver, width: int = 375, height: int = 812):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True}
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def background_luminance(driver) -> float:
    rgb = driver.execute_script(
        "var c = getComputedStyle(document.body).backgroundColor.match(/\\d+(\\.\\d+)?/g).map(Number); return "
        "c.slice(0, 3);"
    )

    def lin(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def api_first(base: str, q: str) -> str:
    """The slug of the first guide /api/search gives for `q`: what the page must show first."""
    with urlopen(f"{base}/api/search?{urlencode({'q': q, 'limit': 8})}", timeout=30) as r:
        return json.load(r)["groups"][0]["slug"]


def requests_get_json(url: str) -> dict:
    with urlopen(url, timeout=30) as r:
        return json.load(r)


def first_option_slug(driver, listbox_id: str) -> str:
    """Read in one script call: the list may be re-rendered between two WebDriver calls."""
    href = driver.execute_script(
        f"var o = document.querySelector('#{listbox_id} [role=option]'); return o ? o.href : '';"
    )
    return urlsplit(href).path.rsplit("/", 1)[-1] if href else ""


def result_slugs(driver) -> list[str]:
    return [
        a.get_attribute("href").rsplit("/", 1)[-1]
        for a in driver.find_elements(By.CSS_SELECTOR, "#results .result-title a")
    ]


def live_results(driver, listbox_id: str, q: str, at_least: int = 1, what: str = "live results"):
    """Wait until the dropdown shows the answer to `q` itself (not to a prefix typed on the way) and return its
    options."""
    wait_for(
        driver,
        lambda d: d.execute_script(
            "var l = document.getElementById(arguments[0]); return l.getAttribute('data-query') === arguments[1] "
            "&& l.querySelectorAll('[role=option]').length >= arguments[2];",
            listbox_id,
            q,
            at_least,
        ),
        what,
    )
    return options(driver, listbox_id)


def options(driver, listbox_id: str):
    return driver.find_elements(By.CSS_SELECTOR, f"#{listbox_id} [role='option']")


def type_into(driver, element, text: str) -> None:
    element.clear()
    element.send_keys(text)


def mark_page(driver) -> None:
    """Set a flag on the window: it survives in-page updates and disappears on any page load."""
    driver.execute_script("window.__noReload = 'still here';")


def same_page(driver) -> bool:
    return driver.execute_script("return window.__noReload === 'still here';")


@pytest.fixture(autouse=True)
def _reset(browser):
    """Every test starts on a desktop-sized window with the light system theme and no saved theme."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    scheme(browser, "light")
    yield


# ---- search as you type --------------------------------------------------------------------------
def test_typing_a_query_shows_results_without_a_page_load(browser, live_server):
    load(browser, live_server + "/")
    assert browser.title == "The Year Above: guides for medical students from the year above"
    shot(browser, "home-light")
    box = browser.find_element(By.ID, "hero-q")
    mark_page(browser)
    box.send_keys("can I use the BNF in the PSA")
    opts = live_results(
        browser, "hero-q-list", "can I use the BNF in the PSA", 2, "live results under the home search box"
    )
    assert first_option_slug(browser, "hero-q-list") == api_first(live_server, "can I use the BNF in the PSA")
    assert any("/guides/psa-bnf-and-resources" in o.get_attribute("href") for o in opts[:3])
    assert box.get_attribute("aria-expanded") == "true"
    assert same_page(browser) and urlsplit(browser.current_url).path == "/"
    assert opts[-1].text.startswith("See all results for")
    shot(browser, "home-live-results", full_page=False)


def test_typing_fast_sends_one_request_and_drops_stale_ones(browser, live_server, site_app):
    load(browser, live_server + "/guides/psa-common-pitfalls")
    browser.execute_script(
        """
        window.__searches = [];
        var original = window.fetch;
        window.fetch = function (url, opts) {
          var entry = {url: decodeURIComponent(String(url)), aborted: false};
          window.__searches.push(entry);
          if (opts && opts.signal) opts.signal.addEventListener('abort', function () { entry.aborted = true; });
          return original.apply(this, arguments);
        };
        """
    )
    box = browser.find_element(By.ID, "q")
    box.send_keys("horus or turas")  # the keystrokes arrive well inside the 150 ms debounce
    live_results(browser, "q-list", "horus or turas")
    assert first_option_slug(browser, "q-list") == api_first(live_server, "horus or turas")
    sent = [parse_qs(urlsplit(s["url"]).query)["q"][0] for s in browser.execute_script("return window.__searches")]
    # 14 keystrokes, one request (a loaded machine may pause mid-word and send one or two more)
    assert sent[-1] == "horus or turas" and len(sent) <= 3, sent

    # a slow answer to an old query must neither block nor overwrite the answer to the new one
    knowledge_base = site_app.extensions["kb"]
    fast_search = knowledge_base.search

    def slow_for_dops(search_request):
        if "DOPS" in search_request.query:
            time.sleep(3)
        return fast_search(search_request)

    knowledge_base.search = slow_for_dops
    expected = api_first(live_server, "rota and pay")
    try:
        type_into(browser, box, "what is a DOPS")
        wait_for(
            browser,
            lambda d: any("DOPS" in s["url"] for s in d.execute_script("return window.__searches")),
            "the DOPS query to be sent",
        )
        type_into(browser, box, "rota and pay")
        live_results(browser, "q-list", "rota and pay", what="results for the newest query")
        assert first_option_slug(browser, "q-list") == expected
        searches = browser.execute_script("return window.__searches")
        assert [s["aborted"] for s in searches if "DOPS" in s["url"]] == [True], searches
        time.sleep(3.1)  # the slow answer would have arrived by now
        assert browser.find_element(By.ID, "q-list").get_attribute("data-query") == "rota and pay"
        assert first_option_slug(browser, "q-list") == expected
        assert box.get_attribute("value") == "rota and pay"
    finally:
        del knowledge_base.search


def test_slash_and_ctrl_k_focus_the_search_box(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    assert browser.find_element(By.ID, "q").get_attribute("value") == "", "the / must not be typed into the box"
    browser.execute_script("document.activeElement.blur()")
    body.send_keys(Keys.CONTROL, "k")
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    load(browser, live_server + "/")
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "hero-q"


def test_skip_link_is_the_first_stop_and_moves_focus_to_the_content(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.get_attribute("class") == "skip-link" and skip.is_displayed() and skip.rect["y"] >= 0
    skip.send_keys(Keys.ENTER)
    wait_for(
        browser, lambda d: d.switch_to.active_element.get_attribute("id") == "main", "focus to move to the main content"
    )


def test_keyboard_selection_opens_the_right_section(browser, live_server):
    load(browser, live_server + "/guides/ward-rounds")
    box = browser.find_element(By.ID, "q")
    box.send_keys("can I resit the PSA")
    live_results(browser, "q-list", "can I resit the PSA", 3)
    # the first section option that deep-links (a guide's overview has no #anchor; the answer card, first
    # when there is one, has its own test)
    idx = next(
        i
        for i, o in enumerate(options(browser, "q-list"))
        if urlsplit(o.get_attribute("href")).fragment and "lr-answer" not in (o.get_attribute("class") or "")
    )
    for _ in range(idx + 1):
        box.send_keys(Keys.ARROW_DOWN)
    if idx:
        box.send_keys(Keys.ARROW_UP)
        box.send_keys(Keys.ARROW_DOWN)
    chosen = browser.find_element(By.ID, box.get_attribute("aria-activedescendant"))
    assert chosen.get_attribute("aria-selected") == "true"
    assert chosen == options(browser, "q-list")[idx]
    href = chosen.get_attribute("href")
    target = urlsplit(href)
    assert target.path.startswith("/guides/") and target.fragment, href
    box.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: urlsplit(d.current_url).path == target.path, "the chosen guide to open")
    here = urlsplit(browser.current_url)
    assert here.fragment == target.fragment
    # the words the search matched (acronyms expanded) travel with the link to be highlighted
    assert parse_qs(here.query)["h"] == parse_qs(target.query)["h"] and "resit" in parse_qs(here.query)["h"][0]
    heading = browser.find_element(By.ID, unquote(target.fragment))
    wait_for(
        browser,
        lambda d: 0 <= heading.rect["y"] - d.execute_script("return window.scrollY") < 250,
        "the section to be scrolled into view",
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#guide-body mark"), "the searched words are highlighted"


def test_escape_closes_the_dropdown_then_clears_the_box(browser, live_server):
    load(browser, live_server + "/tags")
    box = browser.find_element(By.ID, "q")
    box.send_keys("SJT")
    panel = browser.find_element(By.ID, "q-panel")
    live_results(browser, "q-list", "SJT")
    assert panel.is_displayed()
    box.send_keys(Keys.ESCAPE)
    assert not panel.is_displayed() and box.get_attribute("value") == "SJT"
    assert box.get_attribute("aria-expanded") == "false"
    box.send_keys(Keys.ESCAPE)
    assert box.get_attribute("value") == ""


def test_results_page_updates_live_and_the_url_follows(browser, live_server):
    load(browser, live_server + "/search?q=PSA")
    assert browser.title == "PSA – Search – The Year Above"
    mark_page(browser)
    box = browser.find_element(By.ID, "page-q")
    type_into(browser, box, "horus vs turas")
    wait_for(
        browser,
        lambda d: parse_qs(urlsplit(d.current_url).query).get("q") == ["horus vs turas"],
        "the URL to carry the new query",
    )
    shown = result_slugs(browser)
    assert shown[0] == api_first(live_server, "horus vs turas") and "horus-and-turas-eportfolio" in shown[:3]
    assert browser.find_element(By.ID, "search-heading").text == "Results for “horus vs turas”"
    assert browser.title == "horus vs turas – Search – The Year Above"
    assert same_page(browser)
    shot(browser, "results-light")
    # the shared URL gives the same first result on a fresh load
    load(browser, browser.current_url)
    assert result_slugs(browser) == shown
    # arrow keys walk from the box into the results; Enter follows the focused link
    box = browser.find_element(By.ID, "page-q")
    box.click()
    box.send_keys(Keys.ARROW_DOWN)
    box = browser.switch_to.active_element
    box.send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert "section-link" in focused.get_attribute("class")
    href = focused.get_attribute("href")
    focused.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.current_url == href, "the focused section to open")


def test_topic_filter_updates_results_in_place(browser, live_server):
    load(browser, live_server + "/search?q=exam+format")
    mark_page(browser)
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "f-category")).select_by_value("ukmla")
    wait_for(
        browser,
        lambda d: parse_qs(urlsplit(d.current_url).query).get("category") == ["ukmla"],
        "the URL to carry the topic",
    )
    wait_for(
        browser,
        lambda d: (
            (links := d.find_elements(By.CSS_SELECTOR, "#results .result-meta"))
            and all(el.text == "UKMLA" for el in links)
        ),
        "only UKMLA guides",
    )
    assert same_page(browser)


def test_weak_matches_say_no_guide_covers_this_yet(browser, live_server):
    load(browser, live_server + "/search?q=zzqqxx")
    empty = browser.find_element(By.CSS_SELECTOR, "[data-empty]")
    assert "No guide covers this yet" in empty.text
    ask = empty.find_element(By.LINK_TEXT, "Ask the year above for this guide")
    assert "/issues/new" in ask.get_attribute("href") and "zzqqxx" in unquote(ask.get_attribute("href"))
    shot(browser, "results-no-answer")


# ---- answers and coverage -------------------------------------------------------------------------
ANSWERED = "can I use the BNF in the PSA"
NOT_COVERED = "car insurance for young drivers"


def test_the_answer_card_leads_the_results_and_opens_the_passage(browser, live_server):
    load(browser, live_server + "/search?q=" + quote(ANSWERED))
    card = browser.find_element(By.CSS_SELECTOR, "[data-answer]")
    assert card.location["y"] < browser.find_element(By.ID, "results").location["y"]  # it comes first
    label = browser.find_element(By.ID, card.get_attribute("aria-labelledby"))
    assert label.text.lower() == "answer from the guides"  # the region is named for screen readers
    assert card.find_elements(By.CSS_SELECTOR, ".answer-text mark"), "the question's words are highlighted"
    api = requests_get_json(live_server + "/api/search?q=" + quote(ANSWERED))
    assert api["coverage"] == "answered" and api["answer"]["text"] in card.text
    shot(browser, "answer-card-light", full_page=False)
    link = card.find_element(By.CSS_SELECTOR, "[data-answer-link]")
    href = link.get_attribute("href")
    assert f"#{api['answer']['anchor']}:~:text=" in href
    link.send_keys(Keys.ENTER)  # keyboard only
    wait_for(browser, lambda d: urlsplit(d.current_url).path == f"/guides/{api['answer']['slug']}", "the guide to open")
    heading = browser.find_element(By.ID, api["answer"]["anchor"])
    first_words = " ".join(api["answer"]["text"].split()[:4])
    passage = browser.find_element(
        By.XPATH,
        "//*[@id='guide-body']//*[contains(normalize-space(.), "
        f"{json.dumps(first_words)})][not(*[contains(normalize-space(.), {json.dumps(first_words)})])]",
    )
    top = browser.execute_script("return window.scrollY")
    wait_for(
        browser,
        lambda d: abs(passage.rect["y"] - d.execute_script("return window.scrollY")) < 900,
        "the passage to be in view",
    )
    assert heading.rect["y"] <= passage.rect["y"] and top >= 0
    shot(browser, "answer-passage-opened", full_page=False)


def test_the_answer_comes_first_in_the_as_you_type_list(browser, live_server):
    load(browser, live_server + "/guides/ward-rounds")
    box = browser.find_element(By.ID, "q")
    box.send_keys(ANSWERED)
    opts = live_results(browser, "q-list", ANSWERED, 2)
    answer = opts[0]
    assert "lr-answer" in answer.get_attribute("class") and answer.text.lower().startswith("answer")
    # its accessible name is its visible text: "Answer:", the passage, then the guide and section
    assert answer.get_attribute("aria-label") is None and browser.execute_script(
        "return arguments[0].textContent", answer
    ).startswith("Answer: ")
    box.send_keys(Keys.ARROW_DOWN)
    assert box.get_attribute("aria-activedescendant") == answer.get_attribute("id")
    shot(browser, "answer-live-light", full_page=False)
    target = urlsplit(answer.get_attribute("href"))
    box.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: urlsplit(d.current_url).path == target.path, "the answer's guide to open")


def test_a_question_no_guide_covers_says_so_and_offers_a_request(browser, live_server):
    load(browser, live_server + "/search?q=" + quote(NOT_COVERED))
    empty = browser.find_element(By.CSS_SELECTOR, "[data-coverage='not_covered']")
    assert empty.find_element(By.TAG_NAME, "h2").text == "No guide covers this yet"
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-answer]")
    assert browser.find_element(By.ID, "results-heading").text == "The closest we have"
    assert browser.find_element(By.ID, "results").get_attribute("aria-labelledby") == "results-heading"
    ask = empty.find_element(By.CSS_SELECTOR, "[data-ask]")
    assert ask.text == "Ask the year above for this guide"
    assert NOT_COVERED in unquote(ask.get_attribute("href")).replace("+", " ")
    shot(browser, "not-covered-light", full_page=False)
    scheme(browser, "dark")
    shot(browser, "not-covered-dark", full_page=False)
    # keyboard: the request link is the next stop after the search button
    browser.find_element(By.CSS_SELECTOR, "#search-page-form button[type=submit]").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("data-ask") is not None


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("q", [ANSWERED, NOT_COVERED])
def test_axe_on_the_answer_and_not_covered_pages(browser, live_server, theme, q):
    scheme(browser, theme)
    load(browser, live_server + "/search?q=" + quote(q))
    result = run_axe(browser)
    assert "error" not in result, result
    serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_with_the_answer_open_in_the_as_you_type_list(browser, live_server, theme):
    scheme(browser, theme)
    load(browser, live_server + "/guides/ward-rounds")
    box = browser.find_element(By.ID, "q")
    box.send_keys(ANSWERED)
    assert "lr-answer" in live_results(browser, "q-list", ANSWERED, 2)[0].get_attribute("class")
    box.send_keys(Keys.ARROW_DOWN)
    result = run_axe(browser)
    serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)
    shot(browser, f"answer-live-{theme}", full_page=False)


# ---- guide page ---------------------------------------------------------------------------------
def test_guide_page_light(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    assert browser.title == "PSA format: how many questions, how long, and how the marks are split – The Year Above"
    shot(browser, "guide-light")
    shot(browser, "guide-light-top", full_page=False)
    toc = browser.find_element(By.CSS_SELECTOR, ".guide .toc")
    assert toc.find_element(By.TAG_NAME, "details").get_attribute("open") is not None
    # sticky on a wide screen: after scrolling far down the contents are still on screen
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight * 0.6)")
    time.sleep(0.3)
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", toc)
    assert 0 <= top < 200, top
    assert browser.find_elements(By.CSS_SELECTOR, ".toc a[aria-current='true']"), (
        "the contents mark the section being read"
    )
    # related guides: nearest neighbours, never the guide itself
    related = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".related a")]
    assert related and not any(h.endswith("/guides/psa-format-and-sections") for h in related)
    assert "Last reviewed" in browser.find_element(By.CSS_SELECTOR, ".guide-meta").text


def test_glossary_terms_have_keyboard_tooltips(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    abbr = browser.find_element(By.CSS_SELECTOR, "#guide-body abbr[tabindex='0']")
    assert abbr.get_attribute("data-tip") == "Prescribing Safety Assessment"
    assert "(Prescribing Safety Assessment)" in abbr.get_attribute("textContent")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", abbr)
    content = browser.execute_script("return getComputedStyle(arguments[0], '::after').content", abbr)
    assert "Prescribing Safety Assessment" in content
    shot(browser, "guide-tooltip", full_page=False)


def test_section_links_can_be_copied(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    origin = live_server
    browser.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
    )
    button = browser.find_element(By.CSS_SELECTOR, "#guide-body .anchor-link")
    anchor = button.get_attribute("data-anchor")
    assert button.get_attribute("aria-label").startswith("Copy link to section: ")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_for(browser, lambda d: button.text == "Copied", "the copy confirmation")
    assert urlsplit(browser.current_url).fragment == anchor
    copied = browser.execute_async_script(
        "var done = arguments[0]; navigator.clipboard.readText().then(done, function (e) { done('ERR ' + e); });"
    )
    assert copied == f"{live_server}/guides/psa-format-and-sections#{anchor}"


def test_dark_theme_follows_the_system_and_the_toggle(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    light = background_luminance(browser)
    scheme(browser, "dark")
    load(browser, live_server + "/guides/psa-format-and-sections")
    assert background_luminance(browser) < 0.05 < light
    toggle = browser.find_element(By.ID, "theme-toggle")
    assert toggle.is_displayed() and toggle.get_attribute("aria-pressed") == "true"
    shot(browser, "guide-dark")
    shot(browser, "guide-dark-top", full_page=False)
    load(browser, live_server + "/search?q=SJT")
    shot(browser, "results-dark")
    load(browser, live_server + "/")
    shot(browser, "home-dark")
    # the toggle overrides the system and is remembered on the next page
    browser.find_element(By.ID, "theme-toggle").click()
    assert browser.execute_script("return document.documentElement.dataset.theme") == "light"
    assert background_luminance(browser) > 0.8
    load(browser, live_server + "/tags")
    assert background_luminance(browser) > 0.8
    assert browser.find_element(By.ID, "theme-toggle").get_attribute("aria-pressed") == "false"


def test_out_of_date_cycle_shows_a_banner(browser, live_server, site_app):
    settings = site_app.extensions["kb"].settings
    current = settings["KB_TODAY"]
    settings["KB_TODAY"] = "2027-09-01"  # the day the FP2027 cycle passes (FP2028 opens)
    try:
        load(browser, live_server + "/guides/preference-informed-allocation")
        banner = browser.find_element(By.CSS_SELECTOR, ".banner.warning")
        assert "FP2027 application cycle, which has passed" in banner.text
        shot(browser, "guide-cycle-passed", full_page=False)
    finally:
        settings["KB_TODAY"] = current
    load(browser, live_server + "/guides/preference-informed-allocation")
    assert not browser.find_elements(By.CSS_SELECTOR, ".banner.warning")


def test_print_styles_show_only_the_guide(browser, live_server):
    load(browser, live_server + "/guides/psa-format-and-sections")
    # printed from a phone in dark mode, a guide still prints black on white
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"media": "print", "features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    try:
        assert background_luminance(browser) > 0.95
        assert browser.execute_script("return getComputedStyle(document.body).color") == "rgb(0, 0, 0)"
        hidden = browser.execute_script(
            "return ['.site-header', '.site-footer', '.toc', '.related'].map(function (s) {"
            " var el = document.querySelector(s); return el ? getComputedStyle(el).display : 'none'; });"
        )
        assert hidden == ["none"] * 4
        assert browser.find_element(By.ID, "sources-heading").is_displayed()
        after = browser.execute_script(
            "return getComputedStyle(document.querySelector('.sources a'), '::after').content"
        )
        assert "http" in after, "printed sources show their addresses"
    finally:
        scheme(browser, "light")
    pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"]
    (ARTIFACTS / "guide-print.pdf").write_bytes(base64.b64decode(pdf))


# ---- phone width -----------------------------------------------------------------------------------
PHONE_PAGES = {
    "home": "/",
    "results": "/search?q=SJT",
    "guide": "/guides/psa-format-and-sections",
    "guides": "/guides",
    "tags": "/tags",
    "404": "/guides/no-such-guide",
}


def test_phone_width_has_no_horizontal_scroll(browser, live_server):
    with phone(browser):
        for name, path in PHONE_PAGES.items():
            load(browser, live_server + path)
            width, viewport = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert viewport == 375
            assert width <= viewport, f"{path} scrolls sideways at 375 px ({width} px wide)"
            shot(browser, f"phone-{name}")
        # on a phone the contents start folded away, and open with a tap
        load(browser, live_server + "/guides/psa-format-and-sections")
        details = browser.find_element(By.CSS_SELECTOR, "details[data-toc]")
        assert details.get_attribute("open") is None
        details.find_element(By.TAG_NAME, "summary").click()
        assert details.get_attribute("open") is not None
        shot(browser, "phone-guide-toc-open", full_page=False)
        # live results fit on the screen
        box = browser.find_element(By.ID, "q")
        box.send_keys("PSA resit")
        live_results(browser, "q-list", "PSA resit", what="live results on a phone")
        panel = browser.find_element(By.ID, "q-panel").rect
        assert panel["x"] >= 0 and panel["x"] + panel["width"] <= 375
        shot(browser, "phone-live-results", full_page=False)
        scheme(browser, "dark")
        load(browser, live_server + "/guides/psa-format-and-sections")
        shot(browser, "phone-guide-dark")
    with phone(browser, width=768, height=1024):  # a tablet held upright: the header must still fit on one row
        for path in PHONE_PAGES.values():
            load(browser, live_server + path)
            width, viewport = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width <= viewport, f"{path} scrolls sideways at 768 px ({width} px wide)"
        load(browser, live_server + "/guides/psa-format-and-sections")
        assert browser.find_element(By.CSS_SELECTOR, ".site-header").rect["height"] < 80
        shot(browser, "tablet-guide", full_page=False)


# ---- no JavaScript -----------------------------------------------------------------------------------
def test_without_javascript_the_search_form_still_works(browser_nojs, live_server):
    load(browser_nojs, live_server + "/search?q=SJT")
    assert browser_nojs.execute_script("return 1") == 1  # webdriver scripts run; the page's do not
    results = browser_nojs.find_elements(By.CSS_SELECTOR, "#results > li")
    assert len(results) >= 3
    assert "SJT" in results[0].text
    assert not browser_nojs.find_element(By.ID, "theme-toggle").is_displayed(), "a toggle that cannot work is hidden"
    shot(browser_nojs, "nojs-results")
    # the home page's form submits as a plain GET
    load(browser_nojs, live_server + "/")
    box = browser_nojs.find_element(By.ID, "hero-q")
    box.send_keys("what happens if I fail the PSA")
    box.send_keys(Keys.ENTER)
    wait_for(browser_nojs, lambda d: urlsplit(d.current_url).path == "/search", "the form to submit")
    assert parse_qs(urlsplit(browser_nojs.current_url).query)["q"] == ["what happens if I fail the PSA"]
    assert "psa-resits-and-failing" in result_slugs(browser_nojs)[:3]
    # the guide's contents are open and its glossary terms keep their native title
    load(browser_nojs, live_server + "/guides/psa-format-and-sections")
    assert browser_nojs.find_element(By.CSS_SELECTOR, "details[data-toc]").get_attribute("open") is not None
    assert (
        browser_nojs.find_element(By.CSS_SELECTOR, "#guide-body abbr").get_attribute("title")
        == "Prescribing Safety Assessment"
    )
    shot(browser_nojs, "nojs-guide", full_page=False)


# ---- 404 -------------------------------------------------------------------------------------------
def test_404_page_is_friendly(browser, live_server):
    load(browser, live_server + "/guides/psa-resit")
    assert browser.title == "Page not found – The Year Above"
    assert browser.find_element(By.TAG_NAME, "h1").text == "We can't find that page"
    box = browser.find_element(By.ID, "error-q")
    assert box.get_attribute("value") == "psa resit"
    shot(browser, "404-light")
    box.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: urlsplit(d.current_url).path == "/search", "the search from the 404 page")
    assert "psa-resits-and-failing" in result_slugs(browser)[:3]


# ---- axe-core ------------------------------------------------------------------------------------------
AXE_PAGES = {
    "home": "/",
    "results": "/search?q=SJT",
    "guide": "/guides/psa-format-and-sections",
    "404": "/guides/no-such-guide",
}


def run_axe(driver) -> dict:
    if not driver.execute_script("return !!window.axe"):
        driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    return driver.execute_async_script(
        """
        var done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']}).then(function (r) {
          done({version: axe.version, violations: r.violations.map(function (v) {
            return {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(function (n) {
              return {target: n.target, summary: n.failureSummary};
            })};
          })});
        }, function (e) { done({error: String(e)}); });
        """
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("page", list(AXE_PAGES))
def test_axe_finds_no_serious_or_critical_violations(browser, live_server, page, theme):
    scheme(browser, theme)
    load(browser, live_server + AXE_PAGES[page])
    result = run_axe(browser)
    assert "error" not in result, result
    (ARTIFACTS / f"axe-{page}-{theme}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)


def test_axe_reports_what_it_should(browser, live_server):
    """The check above can fail: an image without alternative text on the page is a critical violation."""
    load(browser, live_server + "/")
    browser.execute_script(
        "var img = document.createElement('img'); img.src = '/static/favicon.svg'; "
        "document.querySelector('main').appendChild(img);"
    )
    ids = {(v["id"], v["impact"]) for v in run_axe(browser)["violations"]}
    assert ("image-alt", "critical") in ids


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_with_the_live_results_open(browser, live_server, theme):
    scheme(browser, theme)
    load(browser, live_server + "/guides/psa-format-and-sections")
    box = browser.find_element(By.ID, "q")
    box.send_keys("when are the PSA resits")
    live_results(browser, "q-list", "when are the PSA resits", 2)
    box.send_keys(Keys.ARROW_DOWN)
    result = run_axe(browser)
    (ARTIFACTS / f"axe-live-results-{theme}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)


def test_pages_log_no_script_errors_or_csp_violations(browser, live_server):
    """The CSP forbids inline script and style: a template or script that breaks it shows up in the console."""
    browser.get_log("browser")  # drop what earlier tests left
    for path in [
        "/",
        "/search?q=SJT",
        "/guides/psa-format-and-sections?h=PSA+marks",
        "/guides",
        "/tags",
        "/categories/psa",
        "/guides/no-such-guide",
    ]:
        load(browser, live_server + path)
        if path == "/guides/psa-format-and-sections?h=PSA+marks":
            browser.find_element(By.ID, "q").send_keys("SJT")
            live_results(browser, "q-list", "SJT")
        entries = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        if path == "/guides/no-such-guide":  # the page itself answers 404, as it should
            entries = [e for e in entries if "status of 404" not in e["message"]]
        assert entries == [], (path, entries)
