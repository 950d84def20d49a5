"""Every route and parameter fuzzed with hypothesis: only 2xx/3xx/4xx, never a 5xx or a stack trace.

Runs against the Flask test client with the real model and the fixture index. The examples are
derandomised, so a failure reproduces exactly; HYPOTHESIS_PROFILE=fuzz-deep explores ten times as
many random examples for a local soak.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from kb.content.glossary import Glossary
from kb.content.guide import Taxonomy, load_guides
from kb.content.render import render_markdown
from kb.errors import ContentError
from tests.test_security import XSS_VECTORS, active_markup

pytestmark = pytest.mark.slow

settings.register_profile(
    "fuzz",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
settings.register_profile("fuzz-deep", parent=settings.get_profile("fuzz"), derandomize=False)
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz-deep"
PROFILE = settings.get_profile("fuzz-deep" if DEEP else "fuzz")
SCALE = 10 if DEEP else 1


def fuzz(n: int):
    """Settings for one fuzz test: n examples (x10 under the fuzz-deep profile)."""
    return settings(PROFILE, max_examples=n * SCALE)


# ---- strategies -----------------------------------------------------------------------------------

PARAMS = ["q", "limit", "mode", "category", "tag", "spell", "page", "h"]
TRAVERSALS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cwindows%5cwin.ini",
    "....//....//etc/passwd",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "..;/..;/etc/passwd",
    "/etc/passwd",
    "%00",
    "psa-resits%00.md",
    "psa-resits/../psa-exam-format",
    "~root",
    "con",
    "%ff%fe",
    ".",
    "..",
]
# every unicode category but surrogates (not encodable in a URL): controls, format marks, digits like '²'
any_char = st.characters(exclude_categories=("Cs",))
odd_text = st.one_of(
    st.text(any_char, max_size=40),
    st.text(any_char, min_size=250, max_size=400),  # around the 300-character query limit
    st.text(st.sampled_from("\x00\x01\x1b\x7f\u200b\u202e\ufeff\r\n\t %&#?=+\\\"'<>"), max_size=30),
    st.sampled_from(XSS_VECTORS),
    st.sampled_from(TRAVERSALS),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        ["0", "1", "50", "51", "-1", "1e3", "0x10", " 7 ", "٣", "５", "²", "⑤", "NaN", "inf", "00000000001"]
    ),
    st.sampled_from(["psa", "resit", "hybrid", "keyword", "semantic", "applications", "question-banks", "0", "off"]),
    st.just("a" * 100_000),
)
param_pairs = st.lists(
    st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(any_char, max_size=10)), odd_text), max_size=6
)


def percent_bytes(raw: bytes) -> str:
    return "".join(f"%{b:02X}" for b in raw)


raw_component = st.one_of(
    st.text(any_char, max_size=30).map(lambda s: quote(s, safe="")),
    st.binary(max_size=20).map(percent_bytes),  # invalid UTF-8 included
    st.sampled_from(TRAVERSALS),
    st.sampled_from(XSS_VECTORS).map(lambda s: quote(s, safe="")),
    st.sampled_from(["psa-resits", "psa", "question-banks", "style.css", "search.js", "favicon.svg", ""]),
)
PATH_ROUTES = ["/guides/", "/categories/", "/tags/", "/api/guides/", "/static/", "/search/", "/api/search/", "/"]
PLAIN_ROUTES = ["/", "/search", "/guides", "/tags", "/api/search", "/api/guides", "/healthz"]
METHODS = ["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]


# ---- the checks every response must pass ---------------------------------------------------------


def check(resp, url: str) -> None:
    body = resp.get_data(as_text=True)
    assert resp.status_code < 500, (url, resp.status_code, body[:300])
    assert "Traceback" not in body and 'File "/' not in body, url
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", url
    assert "script-src 'self'" in resp.headers.get("Content-Security-Policy", ""), url
    ctype = resp.headers.get("Content-Type", "")
    path = url.split("?", 1)[0]
    if 300 <= resp.status_code < 400:
        location = resp.headers["Location"]
        assert location.startswith(("http://localhost/", "/")), (url, location)  # never off-site
    elif (path.startswith("/api/") or path == "/healthz") and body:  # OPTIONS and HEAD answer with no body
        data = json.loads(body)
        assert ctype.startswith("application/json"), (url, ctype)
        if resp.status_code >= 400:
            assert data["ok"] is False and data["status"] == resp.status_code and isinstance(data["error"], str), (
                url,
                data,
            )
        assert "<" not in body and ">" not in body, url  # JSON never carries raw markup characters
    elif ctype.startswith("text/html"):
        assert active_markup(body) == [], (url, active_markup(body))


# ---- the fuzz tests (2,000 requests' worth of examples in all) ------------------------------------


@fuzz(700)
@given(pairs=param_pairs, page=st.sampled_from(["/api/search", "/search"]))
def test_search_parameters(client, pairs, page):
    """/api/search and /search with random, repeated, huge and hostile parameters."""
    r = client.get(page, query_string=pairs)
    check(r, page)
    if r.status_code == 400 and page == "/api/search":
        d = r.get_json()
        assert d.get("param") in PARAMS, d  # every refusal names the parameter at fault


@fuzz(500)
@given(
    route=st.sampled_from(PATH_ROUTES),
    parts=st.lists(raw_component, min_size=1, max_size=3),
    query=st.lists(raw_component, max_size=2),
)
def test_path_parameters(client, route, parts, query):
    """Every route with a path segment, fed unicode, invalid UTF-8, traversal and markup."""
    url = route + "/".join(parts) + ("?" + "&".join(f"q={v}" for v in query) if query else "")
    assume(not url.startswith("//"))  # the test client would read '//x' as a host; the live-server test sends these raw
    r = client.get(url)
    check(r, url)
    if any(t in url for t in ("etc/passwd", "win.ini", "etc%2fpasswd")):
        assert "root:" not in r.get_data(as_text=True)


@fuzz(300)
@given(
    route=st.sampled_from(
        PLAIN_ROUTES
        + ["/guides/psa-resits", "/api/guides/psa-resits", "/categories/psa", "/tags/psa", "/static/style.css"]
    ),
    method=st.sampled_from(METHODS),
    raw=st.lists(
        st.one_of(
            raw_component, st.sampled_from(["q", "q=", "=", "&", "%", "%%", "%zz", "q=%", "limit=%ff", "q=a&q=b"])
        ),
        max_size=5,
    ),
    body=st.binary(max_size=200),
)
def test_raw_query_strings_and_methods(client, route, method, raw, body):
    """Unparsed query strings (bare keys, stray % and =, invalid UTF-8) with any method on any route."""
    qs = "&".join(raw)
    r = client.open(route, method=method, query_string=qs, data=body)
    check(r, f"{route}?{qs}")
    if method not in ("GET", "HEAD", "OPTIONS"):
        assert r.status_code == 405, (method, route)


form_body = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["q", "slug", "helpful", "comment", "token", "rank", "search_id", "csrf_token"]),
        odd_text,
        max_size=4,
    ),
)


@fuzz(300)
@given(data=st.data())
def test_every_registered_route(app, client, data):
    """Whatever routes exist (today's and any added later), drawn from the app's own URL map."""
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    rule = data.draw(st.sampled_from(rules), label="rule")
    url = rule.rule
    for arg in sorted(rule.arguments):
        value = data.draw(raw_component, label=arg) or "x"
        url = re.sub(r"<(?:[^:<>]+:)?" + arg + ">", lambda _m, v=value: v, url)
    assume(not url.startswith("//"))
    method = data.draw(st.sampled_from(sorted(rule.methods | {"POST", "DELETE"})), label="method")
    qs = "&".join(
        data.draw(
            st.lists(
                st.one_of(raw_component, st.sampled_from(["q=psa", "limit=3", "q", "%", "slug=psa-resits"])), max_size=4
            ),
            label="query",
        )
    )
    r = client.open(url, method=method, query_string=qs, data=data.draw(form_body, label="body"))
    check(r, f"{url}?{qs}")


# HTTP cannot carry a newline inside a header value; everything else printable goes
header_value = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    st.sampled_from(XSS_VECTORS).map(lambda v: " ".join(v.split())),
)
header_names = st.sampled_from(
    [
        "Accept",
        "Accept-Language",
        "Accept-Encoding",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "Referer",
        "User-Agent",
        "If-None-Match",
        "If-Modified-Since",
        "Range",
        "Cookie",
        "Content-Type",
    ]
)


@fuzz(200)
@given(
    route=st.sampled_from(PLAIN_ROUTES + ["/guides/psa-resits", "/static/search.js"]),
    headers=st.dictionaries(header_names, header_value, max_size=4),
)
def test_headers(client, route, headers):
    """Odd Accept, Host, forwarding and conditional headers never reach a 5xx."""
    url = route + ("?q=psa" if "search" in route else "")
    check(client.get(url, headers=headers), url)


# ---- bad content: the loaders only ever raise ContentError --------------------------------------

yaml_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(any_char, max_size=20), st.dates()
)
yaml_value = st.recursive(
    yaml_scalar,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
    max_leaves=8,
)
FIELDS = ["title", "summary", "category", "tags", "authors", "last_reviewed", "applies_to", "sources"]


def _yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True, default_flow_style=None)


@fuzz(300)
@given(
    meta=st.dictionaries(st.sampled_from(FIELDS + ["extra"]), yaml_value, max_size=9),
    raw=st.one_of(st.none(), st.binary(max_size=200), st.text(any_char, max_size=200)),
    body=st.text(any_char, max_size=300),
)
def test_guide_loader_never_crashes(tmp_path_factory, meta, raw, body):
    from tests.conftest import FIXTURE_CONTENT

    content = tmp_path_factory.mktemp("c")
    (content / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    (content / "psa").mkdir()
    path = content / "psa" / "fuzzed.md"
    if raw is None:
        path.write_text("---\n" + _yaml(meta) + "---\n\n" + body, encoding="utf-8")
    elif isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw, encoding="utf-8")
    guides, problems = load_guides(content)
    assert len(guides) + sum(p.level == "error" for p in problems) >= 1  # accepted, or refused with a reason
    for g in guides:
        render_markdown(g.body)


@fuzz(200)
@given(
    taxonomy=st.one_of(yaml_value, st.text(any_char, max_size=80)),
    glossary=st.one_of(yaml_value, st.text(any_char, max_size=80)),
)
def test_taxonomy_and_glossary_loaders_never_crash(tmp_path_factory, taxonomy, glossary):
    content = tmp_path_factory.mktemp("c")
    (content / "taxonomy.yml").write_text(taxonomy if isinstance(taxonomy, str) else _yaml(taxonomy), encoding="utf-8")
    (content / "glossary.yml").write_text(glossary if isinstance(glossary, str) else _yaml(glossary), encoding="utf-8")
    for load in (Taxonomy.load, Glossary.load):
        try:
            load(content)
        except ContentError as exc:
            assert exc.problems and all(p.message for p in exc.problems)


@fuzz(300)
@given(
    text=st.one_of(
        st.text(any_char, max_size=400),
        st.lists(
            st.sampled_from(XSS_VECTORS + ["\n", "## ", "[", "](", ")", "<", ">", "`", "*", "|"]), max_size=12
        ).map("".join),
    )
)
def test_render_never_crashes_and_stays_inert(text):
    html = render_markdown(text).html
    assert active_markup(html) == []
