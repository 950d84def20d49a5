"""Search logging, click tracking, feedback (CSRF, rate limit) and `flask kb report` through the site."""

import json
import re
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app

IP = "203.0.113.77"
FORWARDED = "198.51.100.23"
AGENT = "UniqueAgent/9.9 (tracking-probe)"


@pytest.fixture
def site(analytics_site):
    """A site with analytics, seen from one reader's address, proxy hop and browser."""

    def make(**overrides):
        app, client = analytics_site(KB_REPO_URL="https://github.com/example/guides", **overrides)
        client.environ_base.update({"REMOTE_ADDR": IP, "HTTP_X_FORWARDED_FOR": FORWARDED, "HTTP_USER_AGENT": AGENT})
        return app, client

    make.db = analytics_site.db
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
    assert logged == [
        ("resit", "hybrid", "page", logged[0][3]),
        ("question banks", "keyword", "api", len(api["groups"])),
    ]
    assert logged[0][3] > 0
    # result links stay clean guide URLs; the click is reported by ping / beacon with the search id
    sid = re.search(r'ping="/api/click\?s=([0-9a-f]{16})&amp;g=psa-resits&amp;r=1"', html).group(1)
    assert (
        'href="/guides/psa-resits?h=resit#can-i-resit-the-psa"' in html
        and f'data-click="/api/click?s={sid}&amp;g=psa-resits&amp;r=1&amp;q=resit"' in html
    )


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
    assert (
        c.post("/api/click?s=0123456789abcdef&g=study-groups&r=2&q=Study+Tips").status_code == 204
    )  # as-you-type result
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
    columns = {
        col
        for table in ("searches", "clicks", "feedback")
        for (_, col, *_r) in rows(site.db, f"pragma table_info({table})")
    }
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
    assert (
        data["ok"]
        and data["days"] == 7
        and data["totals"]["searches"] == 1
        and data["top_queries"][0]["query"] == "resit"
    )


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
        "Didn't find it? <a "
        'href="https://github.com/example/guides/issues/new?title=Guide+request%3A+resit&amp;labels=guide-request">'
        "Ask for a guide</a>" in with_results
    )


# ---- feedback ---------------------------------------------------------------------------------------
def form(c, slug="psa-resits"):
    html = c.get(f"/guides/{slug}").get_data(as_text=True)
    assert "Was this helpful?" in html and f'action="/guides/{slug}/feedback"' in html
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_feedback_round_trip_without_javascript(site):
    app, c = site()
    token = form(c)
    r = c.post(
        "/guides/psa-resits/feedback",
        data={"token": token, "helpful": "no", "comment": "No resit fees"},
        headers={"Origin": "http://localhost"},
    )
    assert r.status_code == 303 and r.headers["Location"].endswith("/guides/psa-resits?feedback=thanks#feedback")
    assert "Thank you" in c.get("/guides/psa-resits?feedback=thanks").get_data(as_text=True)
    r = c.post(
        "/guides/psa-resits/feedback",
        data={"token": token, "helpful": "yes"},
        headers={"Accept": "application/json", "Referer": "http://localhost/guides/psa-resits"},
    )
    assert r.status_code == 200 and r.get_json() == {"ok": True, "slug": "psa-resits", "helpful": True}
    assert sorted(rows(site.db, "select slug, helpful, comment from feedback")) == [
        ("psa-resits", 0, "No resit fees"),
        ("psa-resits", 1, None),
    ]
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
        (
            {"helpful": "yes", "token": "<token>"},
            {"Origin": "https://evil.example"},
            403,
            "only be sent from this site",
        ),
        ({"helpful": "yes", "token": "<token>"}, {"Origin": "null"}, 403, "only be sent from this site"),
        ({"helpful": "yes", "token": "<token>"}, {"Sec-Fetch-Site": "cross-site"}, 403, "only be sent from this site"),
        (
            {"helpful": "yes", "token": "<token>"},
            {"Referer": "https://evil.example/page"},
            403,
            "only be sent from this site",
        ),
        ({"helpful": "maybe", "token": "<token>"}, {}, 400, "'helpful' must be 'yes' or 'no'"),
        ({"helpful": "no", "token": "<token>", "comment": "x" * 1001}, {}, 400, "limit is 1000"),
    ],
    ids=[
        "no-token",
        "forged",
        "other-guide-token",
        "cross-origin",
        "opaque-origin",
        "cross-site-fetch",
        "foreign-referer",
        "bad-answer",
        "long-comment",
    ],
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
    codes = [
        c.post("/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}).status_code for _ in range(6)
    ]
    assert codes == [303] * 5 + [429]
    r = c.post(
        "/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}, headers={"Accept": "application/json"}
    )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "try again in" in r.get_json()["error"]
    other = c.post(
        "/guides/psa-resits/feedback",
        data={"token": token, "helpful": "yes"},
        environ_base={"REMOTE_ADDR": "192.0.2.9"},
    )
    assert other.status_code == 303
    assert rows(site.db, "select count(*) from feedback") == [(6,)]
    assert c.post("/guides/nope/feedback", data={"token": token, "helpful": "yes"}).status_code == 404


def test_a_rank_that_is_not_a_whole_number_is_a_clear_400(site):
    app, c = site()
    for bad in ("²", "①", "abc", "0", "1001", "-1", "1.5", "9" * 30):
        r = c.post("/api/click", query_string={"s": "0123456789abcdef", "g": "psa-resits", "r": bad})
        d = r.get_json()
        assert r.status_code == 400 and d["param"] == "r" and "whole number from 1 to 1000" in d["error"], (bad, d)
    assert c.post("/api/click?s=0123456789abcdef&g=psa-resits&r=1000").status_code == 204
    assert c.post("/api/click?s=0123456789abcdef&g=psa-resits").status_code == 204  # no rank at all is fine
    flush(app)
    assert sorted(rows(site.db, "select rank from clicks")) == [(1000,)]  # one search id: the repeat is ignored


def test_a_database_blip_does_not_leave_a_worker_signing_with_its_own_key(site, tmp_path, monkeypatch):
    """Two workers on one database; the database is unreachable when the first renders a guide."""
    monkeypatch.setattr("kb.web.analytics.KEY_RETRY_INTERVAL", 0, raising=False)
    blocker = tmp_path / "shared"
    blocker.write_text("a file where the database folder should be")  # the database cannot be opened
    url = f"sqlite:///{blocker / 'analytics.sqlite3'}"
    first, c1 = site(KB_DATABASE_URL=url)
    second, c2 = site(KB_DATABASE_URL=url)
    assert c1.get("/guides/psa-resits").status_code == 200  # the guide still renders during the outage
    blocker.unlink()  # the database is back
    for signer, taker in ((c2, c1), (c1, c2)):
        r = taker.post(
            "/guides/psa-resits/feedback",
            data={"token": form(signer), "helpful": "yes"},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 200, r.get_json()
    with sqlite3.connect(blocker / "analytics.sqlite3") as conn:
        assert conn.execute("select count(*) from feedback").fetchone() == (2,)


def test_feedback_while_the_signing_key_cannot_be_read_is_a_clear_503(site, tmp_path, caplog):
    blocker = tmp_path / "shared"
    blocker.write_text("a file where the database folder should be")
    app, c = site(KB_DATABASE_URL=f"sqlite:///{blocker / 'analytics.sqlite3'}")
    pages = [c.get("/guides/psa-resits").get_data(as_text=True) for _ in range(3)]
    assert all('name="token" value=""' in page and "Was this helpful?" in page for page in pages)
    r = c.post(
        "/guides/psa-resits/feedback", data={"token": "", "helpful": "yes"}, headers={"Accept": "application/json"}
    )
    assert (
        r.status_code == 503
        and r.get_json()["error"] == "feedback cannot be taken just now; please try again in a few minutes"
    )
    html = c.post("/guides/psa-resits/feedback", data={"token": "", "helpful": "yes"})
    assert html.status_code == 503 and "Traceback" not in html.get_data(as_text=True)
    # asked once, not on every page: the next attempt waits KEY_RETRY_INTERVAL
    assert caplog.text.count("feedback forms cannot be signed until the database answers") == 1


def test_behind_a_proxy_each_reader_has_their_own_rate_limit(site):
    """KB_PROXY_HOPS=1: the reader is the address the proxy appended to X-Forwarded-For."""
    app, c = site(KB_PROXY_HOPS=1)
    token = form(c)
    proxy = {"REMOTE_ADDR": "127.0.0.1"}

    def post(forwarded_for: str) -> int:
        environ = {**proxy, "HTTP_X_FORWARDED_FOR": forwarded_for}
        return c.post(
            "/guides/psa-resits/feedback", data={"token": token, "helpful": "yes"}, environ_base=environ
        ).status_code

    assert [post(f"198.51.100.{i}") for i in range(16)] == [303] * 16  # sixteen readers, one proxy
    # one reader cannot dodge the limit by adding addresses of their own in front of the proxy's entry
    assert [post(f"192.0.2.{i}, 203.0.113.5") for i in range(6)] == [303] * 5 + [429]
    assert post("203.0.113.6") == 303


def test_without_proxy_hops_forwarded_headers_are_ignored(site):
    app, c = site()
    token = form(c)
    codes = [
        c.post(
            "/guides/psa-resits/feedback",
            data={"token": token, "helpful": "yes"},
            environ_base={"HTTP_X_FORWARDED_FOR": f"198.51.100.{i}"},
        ).status_code
        for i in range(6)
    ]
    assert codes == [303] * 5 + [429]


def test_feedback_tokens_are_short_lived(site, monkeypatch):
    from itsdangerous.timed import TimestampSigner

    app, c = site()
    now = int(TimestampSigner.get_timestamp(None))  # type: ignore[arg-type]
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now - 2 * 3600 - 60)
    old = form(c)  # served a little over two hours ago
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now - 2 * 3600 + 60)
    recent = form(c)
    monkeypatch.undo()
    r = c.post(
        "/guides/psa-resits/feedback", data={"token": old, "helpful": "yes"}, headers={"Accept": "application/json"}
    )
    assert r.status_code == 403 and "expired; reload the page" in r.get_json()["error"]
    assert c.post("/guides/psa-resits/feedback", data={"token": recent, "helpful": "yes"}).status_code == 303


@pytest.mark.slow
def test_report_groups_the_questions_search_could_not_answer_by_demand(fixture_index, real_embedder, tmp_path):
    """Real searches through the site, with the real model: each is recorded with its verdict, and
    `flask kb report` groups the unanswered ones (same words; same meaning) and ranks them by demand."""
    from tests.conftest import FIXTURE_CONTENT

    db = tmp_path / "analytics.sqlite3"
    app = create_app(
        {
            "TESTING": True,
            "KB_CONTENT_DIR": str(FIXTURE_CONTENT),
            "KB_INDEX_DIR": str(fixture_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{db}",
        },
        embedder=real_embedder,
    )
    c = app.test_client()
    asked = {
        "night shift survival f1": 3,
        "F1 night shift survival": 1,  # the same words in another order
        "surviving night shifts as an f1": 2,  # the same question reworded
        "usmle step 1 passing score": 2,
        "council tax exemption for students": 1,
        "how many questions are in the psa": 4,  # answered by a guide: not a gap
    }
    for q, n in asked.items():
        for _ in range(n):
            assert c.get("/search", query_string={"q": q}).status_code == 200
    flush(app)
    verdicts = dict(rows(db, "SELECT DISTINCT query, coverage FROM searches"))
    assert verdicts["how many questions are in the psa"] == "answered"
    assert verdicts["usmle step 1 passing score"] == "not_covered"
    assert {verdicts[q.lower()] for q in asked if "night" in q} <= {"related", "not_covered"}  # stored lowercased

    result = app.test_cli_runner().invoke(args=["kb", "report", "--json"])
    assert result.exit_code == 0, result.output
    gaps = json.loads(result.output)["unanswered"]
    assert [(g["question"], g["asked"]) for g in gaps] == [
        ("night shift survival f1", 6),
        ("usmle step 1 passing score", 2),
        ("council tax exemption for students", 1),
    ]
    night = gaps[0]
    assert [w["query"] for w in night["wordings"]] == [
        "night shift survival f1",
        "surviving night shifts as an f1",
        "f1 night shift survival",
    ]
    assert night["closest"]["slug"] and night["command"].startswith(
        "python scripts/new_guide.py 'Night shift survival f1' --category "
    )

    text = app.test_cli_runner().invoke(args=["kb", "report"]).output
    section = text.split("Questions we could not answer")[1]
    assert (
        section.index("night shift survival f1")
        < section.index("usmle step 1 passing score")
        < section.index("council tax exemption")
    )
    assert "also asked as: “surviving night shifts as an f1” (2)" in section
    assert "how many questions are in the psa" not in section
