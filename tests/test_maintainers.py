"""The maintainers' report page: only with KB_MAINTAINER_TOKEN, behind HTTP Basic; the same report as the CLI."""

from __future__ import annotations

import base64
import re

import pytest

from app import create_app
from kb.errors import ConfigError
from kb.store import SearchEvent, Store, new_search_id
from tests.fakes import HashEmbedder

TOKEN = "correct-horse-battery-staple"


def basic(password: str, user: str = "maintainer") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def site(analytics_site):
    def make(**overrides):
        return analytics_site(**{"KB_MAINTAINER_TOKEN": TOKEN, **overrides})

    make.db = analytics_site.db
    return make


def seed(db, asked: dict[tuple[str, str], int]) -> None:
    """Recorded searches: (query, verdict) -> how many times."""
    store = Store(f"sqlite:///{db}", 180)
    store.ensure_schema()
    store.write(
        SearchEvent(new_search_id(), q, "hybrid", 3, 9.0, coverage=verdict)
        for (q, verdict), n in asked.items()
        for _ in range(n)
    )
    store.dispose()


def test_without_a_token_there_is_no_page(site):
    _, c = site(KB_MAINTAINER_TOKEN="")
    resp = c.get("/maintainers/report", headers=basic(TOKEN))
    assert resp.status_code == 404
    assert "WWW-Authenticate" not in resp.headers


def test_the_page_asks_for_the_password_and_refuses_a_wrong_one(site):
    _, c = site()
    for headers in ({}, basic("not-the-password"), basic(TOKEN[:-1]), {"Authorization": "Bearer " + TOKEN}):
        resp = c.get("/maintainers/report", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="The Year Above maintainers", charset="UTF-8"'
        page = resp.get_data(as_text=True)
        assert "Maintainers only" in page and "Traceback" not in page
        assert TOKEN not in page
    ok = c.get("/maintainers/report", headers=basic(TOKEN, user="anyone"))
    assert ok.status_code == 200
    assert ok.headers["Cache-Control"] == "no-store"
    assert ok.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "Set-Cookie" not in ok.headers


def test_wrong_passwords_are_limited_per_client(site):
    _, c = site()
    codes = [c.get("/maintainers/report", headers=basic(f"guess-{i}")).status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    limited = c.get("/maintainers/report", headers=basic("guess-again"))
    assert int(limited.headers["Retry-After"]) > 0
    # a reader on another address is not held back by this one's guesses
    other = c.get("/maintainers/report", headers=basic(TOKEN), environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 200


def test_the_page_ranks_unanswered_questions_by_demand_with_the_closest_guide_and_command(site):
    app, c = site()
    seed(
        site.db,
        {
            ("usmle step 1 passing score", "not_covered"): 2,
            ("night shift survival f1", "related"): 3,
            ("f1 night shift survival", "not_covered"): 1,  # the same words: one question
            ("how long is the psa", "answered"): 5,  # answered: not a gap
            ("council tax for students", "not_covered"): 1,
        },
    )
    resp = c.get("/maintainers/report", headers=basic(TOKEN))
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    unanswered = page.split('id="report-unanswered"')[1].split("</section>")[0]
    questions = re.findall(r'<h3 class="gap-question">([^<]+)</h3>', unanswered)
    assert questions == ["night shift survival f1", "usmle step 1 passing score", "council tax for students"]
    first = unanswered.split('<li class="gap">')[1]
    assert "Asked 4 times: not covered 1, related 3." in first
    assert "Also asked as: “f1 night shift survival” (1)" in first
    assert re.search(r'Closest guide: <a href="/guides/[a-z0-9-]+">', first)
    assert "python scripts/new_guide.py &#39;Night shift survival f1&#39; --category " in first
    assert "how long is the psa" not in unanswered
    # the same lists the command prints
    top = page.split('id="report-top"')[1].split("</section>")[0]
    assert top.index("how long is the psa") < top.index("night shift survival f1")


def test_days_must_be_a_whole_number_in_range(site):
    _, c = site()
    assert c.get("/maintainers/report?days=7", headers=basic(TOKEN)).status_code == 200
    for bad in ("0", "-1", "abc", "99999", "1.5"):
        resp = c.get(f"/maintainers/report?days={bad}", headers=basic(TOKEN))
        assert resp.status_code == 400, bad
        assert "parameter &#39;days&#39; must be a whole number from 1 to 3650" in resp.get_data(as_text=True).lower()


def test_an_unreadable_database_is_a_clear_503(site, tmp_path):
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not a database file " * 200)
    _, c = site(KB_DATABASE_URL=f"sqlite:///{broken}")
    resp = c.get("/maintainers/report", headers=basic(TOKEN))
    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert "The report can&#39;t be shown right now" in page
    assert "the analytics database cannot be read just now" in page.lower()
    assert "Traceback" not in page and "sqlite" not in page.lower()


def test_a_short_token_is_refused_at_start_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        create_app({"TESTING": True, "KB_MAINTAINER_TOKEN": "short-secret"}, embedder=HashEmbedder())
    assert "KB_MAINTAINER_TOKEN must be at least 16 characters" in caught.value.message
    assert "short-secret" not in caught.value.message
