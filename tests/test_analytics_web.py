"""Search logging, click tracking, feedback (CSRF, rate limit) and `flask kb report` through the site."""

import re
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app
from kb.build import build_index
from tests.fakes import HashEmbedder

IP = "203.0.113.77"
FORWARDED = "198.51.100.23"
AGENT = "UniqueAgent/9.9 (tracking-probe)"


@pytest.fixture
def site(content_copy, tmp_path):
    """A site on the fixture guides (fast fake encoder) with its own analytics database."""
    embedder = HashEmbedder()
    index = tmp_path / "index"
    build_index(content_copy, index, embedder)
    db = tmp_path / "analytics.sqlite3"

    def make(**overrides):
        config = {
            "TESTING": True,
            "KB_CONTENT_DIR": str(content_copy),
            "KB_INDEX_DIR": str(index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{db}",
            "KB_REPO_URL": "https://github.com/example/guides",
            **overrides,
        }
        app = create_app(config, embedder=embedder)
        client = app.test_client()
        client.environ_base.update({"REMOTE_ADDR": IP, "HTTP_X_FORWARDED_FOR": FORWARDED, "HTTP_USER_AGENT": AGENT})
        return app, client

    make.db = db
    return make


def flush(app):
    assert app.extensions["kb_analytics"].recorder.flush(10)


def rows(db, sql):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_searches_are_logged_from_the_page_and_the_api_but_not_as_you_type(site):
    app, c = site()
    html = c.get("/search?q=resit").get_data(as_text=True)
    api = c.get("/api/search?q=question+banks&mode=keyword").get_json()
    live = c.get("/api/search?q=ques&live=1").get_json()
    # search.js marks keystroke requests with this header, for the dropdown and for /search itself
    assert c.get("/api/search?q=quest", headers={"X-Requested-With": "live-search"}).status_code == 200
    live_page = c.get("/search?q=questi", headers={"X-Requested-With": "live-search"}).get_data(as_text=True)
    assert re.search(r'data-click="/api/click\?s=[0-9a-f]{16}&amp;g=[a-z-]+&amp;r=1&amp;q=questi"', live_page)
    assert re.fullmatch(r"[0-9a-f]{16}", api["search_id"]) and re.fullmatch(r"[0-9a-f]{16}", live["search_id"])
    flush(app)
    logged = rows(site.db, "select query, mode, source, results from searches order by id")
    assert logged == [("resit", "hybrid", "page", logged[0][3]), ("question banks", "keyword", "api", len(api["groups"]))]
    assert logged[0][3] > 0
    # result links stay clean guide URLs; the click is reported by ping / beacon with the search id
    sid = re.search(r'ping="/api/click\?s=([0-9a-f]{16})&amp;g=psa-resits&amp;r=1"', html).group(1)
    assert 'href="/guides/psa-resits?h=resit#can-i-resit-the-psa"' in html and f'data-click="/api/click?s={sid}&amp;g=psa-resits&amp;r=1&amp;q=resit"' in html


def test_click_endpoint_records_once_and_ignores_junk(site):
    app, c = site()
    c.get("/search?q=resit")
    flush(app)
    (sid,) = rows(site.db, "select search_id from searches")[0]
    for _ in range(2):  # the browser's ping and search.js's beacon
        r = c.post(f"/api/click?s={sid}&g=psa-resits&r=1", data="PING", content_type="text/ping")
        assert r.status_code == 204 and r.data == b""
    assert c.post("/api/click?s=not-an-id&g=psa-resits&r=1").status_code == 204
    assert c.post(f"/api/click?s={sid}&g=no-such-guide&r=1").status_code == 204
    assert c.post("/api/click?s=0123456789abcdef&g=study-groups&r=2&q=Study+Tips").status_code == 204  # as-you-type result
    flush(app)
    assert sorted(rows(site.db, "select slug, rank from clicks")) == [("psa-resits", 1), ("study-groups", 2)]
    assert ("study tips", "live") in rows(site.db, "select query, source from searches")
    assert c.get("/api/click").status_code == 405


def test_report_lists_zero_result_query_and_clicked_guide_and_the_file_holds_no_ip(site):
    app, c = site()
    for q in ("resit", "how long is the psa", "ward round", "resit"):
        assert c.get("/search", query_string={"q": q}).status_code == 200
    assert c.get("/api/search?q=xylophone+zebra&mode=keyword&spell=0").get_json()["groups"] == []
    page = c.get("/search?q=question+banks").get_data(as_text=True)
    sid = re.search(r'ping="/api/click\?s=([0-9a-f]{16})&amp;g=study-groups', page).group(1)
    assert c.post(f"/api/click?s={sid}&g=study-groups&r=1").status_code == 204
    flush(app)
    result = app.test_cli_runner().invoke(args=["kb", "report"])
    assert result.exit_code == 0, result.output
    out = result.output
    zero = out.split("Zero-result queries")[1].split("\n\n")[0]
    assert "xylophone zebra" in zero
    clicked = out.split("Clicked guides:")[1].split("\n\n")[0]
    assert "study-groups" in clicked and "psa-resits" not in clicked
    assert "2  " in out.split("Top queries")[1].split("\n")[1] and "resit" in out.split("Top queries")[1].split("\n")[1]
    never = out.split("Guides never clicked")[1].split("\n\n")[0]
    assert "psa-resits" in never and "study-groups" not in never
    # nothing that identifies the reader reached the database file (or its write-ahead log)
    raw = b"".join(p.read_bytes() for p in site.db.parent.glob("analytics.sqlite3*"))
    assert raw and b"xylophone zebra" in raw
    for needle in (IP, FORWARDED, AGENT, "203.0.113", "UniqueAgent"):
        assert needle.encode() not in raw
    columns = {col for table in ("searches", "clicks", "feedback") for (_, col, *_r) in rows(site.db, f"pragma table_info({table})")}
    assert not {col for col in columns if re.search(r"ip|addr|agent|cookie|user|session", col)}
    # and the site sets no cookies
    for url in ("/", "/search?q=resit", "/guides/psa-resits", "/api/search?q=psa"):
        assert "Set-Cookie" not in c.get(url).headers


def test_report_json(site):
    app, c = site()
    c.get("/search?q=resit")
    flush(app)
    result = app.test_cli_runner().invoke(args=["kb", "report", "--json", "--days", "7"])
    import json

    data = json.loads(result.output)
    assert data["ok"] and data["days"] == 7 and data["totals"]["searches"] == 1 and data["top_queries"][0]["query"] == "resit"


def test_logging_can_be_switched_off(site):
    app, c = site(KB_LOG_SEARCHES=False)
    html = c.get("/search?q=resit").get_data(as_text=True)
    assert "ping=" not in html and "data-click" not in html
    assert c.get("/api/search?q=resit").get_json()["search_id"] is None
    flush(app)
    assert not site.db.exists() or rows(site.db, "select count(*) from searches") == [(0,)]


def test_search_never_fails_when_the_database_cannot_be_written(site, caplog):
    app, c = site(KB_DATABASE_URL="sqlite:////proc/no-such-dir/analytics.sqlite3")
    for _ in range(3):
        assert c.get("/api/search?q=resit").status_code == 200
        assert c.get("/search?q=resit").status_code == 200
    flush(app)
    assert app.extensions["kb_analytics"].recorder.failed == 6 and "could not record" in caplog.text


def test_ask_for_a_guide_links_to_the_configured_repository(site):
    _, c = site()
    html = c.get("/search?q=parking+permits+for+students").get_data(as_text=True)
    link = re.search(r'href="(https://github\.com/example/guides/issues/new\?[^"]+)"', html).group(1)
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query["title"] == ["Guide request: parking permits for students"]
    with_results = c.get("/search?q=resit").get_data(as_text=True)
    assert (
        'Didn\'t find it? <a href="https://github.com/example/guides/issues/new?title=Guide+request%3A+resit&amp;labels=guide-request">Ask for a guide</a>'
        in with_results
    )


# ---- feedback ---------------------------------------------------------------------------------------
def form(c, slug="psa-resits"):
    html = c.get(f"/guides/{slug}").get_data(as_text=True)
    assert "Was this helpful?" in html and f'action="/guides/{slug}/feedback"' in html
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_feedback_round_trip_without_javascript(site):
    app, c = site()
    token = form(c)
    r = c.post("/guides/psa-resits/feedback", data={"token": token, "helpful": "no", "comment": "No resit fees"}, headers={"Origin": "http://localhost"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/guides/psa-resits?feedback=thanks#feedback")
    assert "Thank you" in c.get("/guides/psa-resits?feedback=thanks").get_data(as_text=True)
    r = c.post(
        "/guides/psa-resits/feedback",
        data={"token": token, "helpful": "yes"},
        headers={"Accept": "application/json", "Referer": "http://localhost/guides/psa-resits"},
    )
    assert r.status_code == 200 and r.get_json() == {"ok": True, "slug": "psa-resits", "helpful": True}
    assert sorted(rows(site.db, "select slug, helpful, comment from feedback")) == [("psa-resits", 0, "No resit fees"), ("psa-resits", 1, None)]
    out = app.test_cli_runner().invoke(args=["kb", "report"]).output
    fb = out.split("Guides by negative feedback")[1]
    assert "1 no   1 yes  psa-resits" in fb and "No resit fees" in fb
    raw = b"".join(p.read_bytes() for p in site.db.parent.glob("analytics.sqlite3*"))
    assert IP.encode() not in raw and AGENT.encode() not in raw


@pytest.mark.parametrize(
    "data, headers, status, message",
    [
        ({"helpful": "yes"}, {}, 403, "could not be verified"),
        ({"helpful": "yes", "token": "forged.token.value"}, {}, 403, "could not be verified"),
        ({"helpful": "yes", "token": "<study-groups>"}, {}, 403, "could not be verified"),
        ({"helpful": "yes", "token": "<token>"}, {"Origin": "https://evil.example"}, 403, "only be sent from this site"),
        ({"helpful": "yes", "token": "<token>"}, {"Origin": "null"}, 403, "only be sent from this site"),
        ({"helpful": "yes", "token": "<token>"}, {"Sec-Fetch-Site": "cross-site"}, 403, "only be sent from this site"),
        ({"helpful": "yes", "token": "<token>"}, {"Referer": "https://evil.example/page"}, 403, "only be sent from this site"),
        ({"helpful": "maybe", "token": "<token>"}, {}, 400, "'helpful' must be 'yes' or 'no'"),
        ({"helpful": "no", "token": "<token>", "comment": "x" * 1001}, {}, 400, "limit is 1000"),
    ],
    ids=["no-token", "forged", "other-guide-token", "cross-origin", "opaque-origin", "cross-site-fetch", "foreign-referer", "bad-answer", "long-comment"],
)
def test_feedback_rejections(site, data, headers, status, message):
    app, c = site()
    tokens = {"<token>": form(c), "<study-groups>": form(c, "study-groups")}
    data = {k: tokens.get(v, v) for k, v in data.items()}
    r = c.post("/guides/psa-resits/feedback", data=data, headers={"Accept": "application/json", **headers})
    assert r.status_code == status and message in r.get_json()["error"]
    html = c.post("/guides/psa-resits/feedback", data=data, headers=headers)
    assert html.status_code == status and "Traceback" not in html.get_data(as_text=True)
    assert not site.db.exists() or rows(site.db, "select count(*) from feedback") == [(0,)]


def test_feedback_is_rate_limited_per_client(site):
    app, c = site()
    token = form(c)
    codes = [c.post("/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}).status_code for _ in range(6)]
    assert codes == [303] * 5 + [429]
    r = c.post("/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}, headers={"Accept": "application/json"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "try again in" in r.get_json()["error"]
    other = c.post("/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 303
    assert rows(site.db, "select count(*) from feedback") == [(6,)]
    assert c.post("/guides/nope/feedback", data={"token": token, "helpful": "yes"}).status_code == 404
