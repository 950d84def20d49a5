"""Every route and error through the Flask test client (real model, fixture index)."""

import shutil
from html.parser import HTMLParser

import pytest

from app import create_app
from kb.index.build import build_index
from tests.conftest import FIXTURE_CONTENT

pytestmark = pytest.mark.slow


def test_home_lists_categories_and_recent(client):
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Prescribing Safety Assessment" in html and "Why join a study group?" in html
    assert 'role="search"' in html and 'action="/search"' in html


def test_api_search_shape(client):
    d = client.get("/api/search?q=how+long+is+the+psa&limit=3").get_json()
    assert d["ok"] and d["mode"] == "hybrid" and len(d["hits"]) <= 3
    h = d["hits"][0]
    assert h["url"] == "/guides/psa-exam-format#how-long-is-the-psa-and-how-many-questions"
    assert {"slug", "title", "heading", "anchor", "snippet", "score", "keyword_rank", "semantic_rank"} <= set(h)
    assert d["groups"][0]["sections"][0]["id"] == h["id"]


@pytest.mark.parametrize(
    "query, param",
    [
        ("q=x&limit=abc", "limit"),
        ("q=x&limit=0", "limit"),
        ("q=x&limit=1000", "limit"),
        ("q=x&mode=foo", "mode"),
        ("q=" + "a" * 5000, "q"),
        ("q=x&category=nope", "category"),
        ("q=x&tag=nope", "tag"),
        ("q=", "q"),
    ],
)
def test_api_bad_parameters_are_400_json(client, query, param):
    r = client.get("/api/search?" + query)
    d = r.get_json()
    assert r.status_code == 400
    assert d["ok"] is False and d["status"] == 400 and d["param"] == param and param in d["error"]


def test_odd_query_syntax_is_just_text(client):
    for q in ["title:((", "AND OR NOT", "🙂 psa", '"psa', "psa*", "% of marks", "a\\b"]:
        r = client.get("/api/search", query_string={"q": q})
        assert r.status_code == 200, q


@pytest.mark.parametrize("q", ['"', "*", "%", "\\", "!!!", "??? ...", "\x01\x02", "\u200b", "🙂"])
def test_query_with_nothing_to_search_for_says_so(client, q):
    # no letters or digits: a clear 400 naming the parameter, never a page of arbitrary "nearest" guides
    r = client.get("/api/search", query_string={"q": q})
    d = r.get_json()
    assert r.status_code == 400 and d["param"] == "q" and "no letters or digits" in d["error"]
    page = client.get("/search", query_string={"q": q})
    assert page.status_code == 400 and "no letters or digits" in page.get_data(as_text=True)


def test_search_page_without_javascript(client):
    html = client.get("/search?q=resit").get_data(as_text=True)
    assert '<ol class="results"' in html
    assert 'href="/guides/psa-resits?h=resit#can-i-resit-the-psa"' in html
    assert "<mark>" in html


def test_search_page_empty_and_filter(client):
    assert client.get("/search").status_code == 200
    html = client.get("/search?q=rank&category=applications").get_data(as_text=True)
    assert "preference-informed-allocation" in html and "psa-resits" not in html


def test_guide_page(client):
    html = client.get("/guides/psa-exam-format").get_data(as_text=True)
    assert "<title>How is the PSA laid out? – The Year Above</title>" in html
    assert 'id="how-long-is-the-psa-and-how-many-questions"' in html
    assert "Last reviewed" in html and "2026-11-01" in html and "evergreen" in html
    assert "https://www.prescribingsafetyassessment.ac.uk/aboutpsa" in html
    assert "/edit/main/content/psa/psa-exam-format.md" in html
    assert '<abbr title="Prescribing Safety Assessment">PSA</abbr>' in html
    assert "Related guides" in html and 'href="/guides/psa-resits"' in html


def test_guide_api_and_list(client):
    d = client.get("/api/guides/psa-resits").get_json()
    assert d["guide"]["title"] == "What happens if you fail the PSA?" and d["guide"]["toc"]
    assert client.get("/api/guides").get_json()["total"] == 5


@pytest.mark.parametrize(
    "url",
    [
        "/guides/nope",
        "/categories/nope",
        "/tags/nope",
        "/nowhere",
        "/guides/../../etc/passwd",
        "/guides/%2e%2e%2fetc%2fpasswd",
    ],
)
def test_unknown_pages_are_404_html(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "Traceback" not in r.get_data(as_text=True)


def test_api_unknown_guide_is_json_404(client):
    r = client.get("/api/guides/nope")
    assert r.status_code == 404 and r.get_json() == {"ok": False, "error": "no guide called 'nope'", "status": 404}


def test_category_tag_pages(client):
    assert "How is the PSA laid out?" in client.get("/categories/psa").get_data(as_text=True)
    assert "Why join a study group?" in client.get("/tags/question-banks").get_data(as_text=True)
    assert client.get("/tags").status_code == 200


def test_security_headers(client):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in r.get_data(as_text=True)  # no inline script anywhere


def test_healthz(client):
    d = client.get("/healthz").get_json()
    assert d["ok"] and d["generation"].startswith("gen-") and d["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_missing_index_is_instructive_503(tmp_path, real_embedder):
    app = create_app(
        {"KB_CONTENT_DIR": str(FIXTURE_CONTENT), "KB_INDEX_DIR": str(tmp_path / "none")}, embedder=real_embedder
    )
    c = app.test_client()
    r = c.get("/api/search?q=psa")
    assert r.status_code == 503 and "scripts/build_index.py" in r.get_json()["error"]
    r = c.get("/search?q=psa")
    assert r.status_code == 503 and "Search is not ready" in r.get_data(as_text=True)
    assert c.get("/guides/psa-resits").status_code == 200  # browsing still works
    assert c.get("/healthz").status_code == 503


class _Scan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:")):
                self.found.append((tag, name, value))
        if tag in ("iframe", "object", "embed", "svg"):
            self.found.append((tag, "", ""))

    def handle_data(self, data):
        if self.lasttag == "script" and data.strip():
            self.found.append(("script", "inline", data[:40]))


def active_markup(html: str) -> list:
    """Event handlers, script URLs, inline scripts or embeds actually present as markup."""
    scan = _Scan()
    scan.feed(html)
    return scan.found


def test_hostile_guide_renders_inert(tmp_path, real_embedder):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    evil = content / "psa" / "evil.md"
    evil.write_text(
        '---\ntitle: "<script>alert(1)</script> title"\nsummary: "<img src=x onerror=alert(1)>"\ncategory: '
        "psa\ntags: [psa]\n"
        'authors: ["</script><script>alert(2)</script>"]\nlast_reviewed: 2026-11-01\napplies_to: evergreen\nsources:\n'
        '  - title: "x"\n    url: "https://example.org/"\n---\n\nBody <script>alert(1)</script> and <img src=x '
        "onerror=alert(1)>.\n\n## Section\n\nText.\n"
    )
    index = tmp_path / "index"
    build_index(content, index, real_embedder)
    app = create_app({"KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index)}, embedder=real_embedder)
    c = app.test_client()
    for url in ["/guides/evil", "/", "/categories/psa", "/search?q=alert+title"]:
        body = c.get(url).get_data(as_text=True)
        assert "alert(1)" in body or url == "/", url  # the text is shown, escaped
        assert active_markup(body) == [], url
    for url in ["/api/guides/evil", "/api/search?q=alert", "/api/guides"]:
        body = c.get(url).get_data(as_text=True)
        assert "<" not in body and ">" not in body, url  # JSON escapes markup characters


@pytest.mark.parametrize(
    "slug, day, banner",
    [
        ("preference-informed-allocation", "2026-11-25", None),  # the fixture day: every guide is current
        ("preference-informed-allocation", "2027-08-31", None),  # the last day of the FP2027 cycle
        (
            "preference-informed-allocation",
            "2027-09-01",
            "This guide is about the FP2027 application cycle, which has passed.",
        ),
        ("psa-exam-format", "2027-11-01", None),  # reviewed 2026-11-01: 365 days is not yet stale
        ("psa-exam-format", "2027-11-02", "Not reviewed for 366 days."),
    ],
)
def test_banners_follow_the_injected_day(fixture_index, real_embedder, slug, day, banner):
    """The site judges banners on KB_TODAY, the same day the checker and the scaffold use."""
    app = create_app(
        {
            "TESTING": True,
            "KB_CONTENT_DIR": str(FIXTURE_CONTENT),
            "KB_INDEX_DIR": str(fixture_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_TODAY": day,
        },
        embedder=real_embedder,
    )
    html = app.test_client().get(f"/guides/{slug}").get_data(as_text=True)
    if banner is None:
        assert 'class="banner warning"' not in html
    else:
        assert banner in html
