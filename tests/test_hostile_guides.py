"""Hostile guides: limits refuse them with path:line:col messages in the loader, the checker, the build and the site.

Each reproduction is a scaled-down copy of a case from the reliability probe (alias bomb, nested
brackets, a deep list, raw HTML, thousands of headings); benchmarks/bench_hostile_guides.py runs the
full-size ones and times them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import markdown
import pytest

from app import create_app
from benchmarks import bench_hostile_guides
from kb.content import guide as kc
from kb.content.glossary import Glossary
from kb.content.guide import load_guides
from kb.content.render import render_markdown
from kb.errors import ContentError, RenderError
from kb.index.build import build_index
from kb.tools.validate import CheckOptions, check_content
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder

FRONT = bench_hostile_guides.FRONT  # one hostile front matter for the tests and the benchmark
BODY_LINE = FRONT.count("\n") + 1  # the file line the body starts on
INTRO = "An introduction.\n\n"

# A billion-laughs alias bomb (9 levels in the probe), 3 levels here: 729 values from 190 bytes.
ALIAS_BOMB = (
    "---\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    'title: "Bomb"\n'
    "applies_to: *c\n"
    "---\n\nBody.\n"
)


def deep_list(depth: int) -> str:
    return "".join("    " * i + "- item\n" for i in range(depth))


def content_with(tmp_path: Path, text: str, name: str = "hostile-guide.md") -> Path:
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    (content / "psa" / name).write_text(text, encoding="utf-8")
    return content


def errors_for(problems, name: str = "hostile-guide.md"):
    return [p for p in problems if p.path.endswith(name) and p.level == "error"]


def refused_everywhere(tmp_path: Path, text: str, code: str):
    """Load, check and build a content folder holding `text`; every reader must refuse it with `code`.

    Returns the loader's problem, which the checker and the build report word for word.
    """
    content = content_with(tmp_path, text)
    guides, problems = load_guides(content)
    assert "hostile-guide" not in {g.slug for g in guides}
    (hit,) = [p for p in errors_for(problems) if p.code == code]
    assert hit.line > 0 and hit.col > 0 and "(fix: " in hit.format()

    report = check_content(content, options=CheckOptions(duplicates=False))
    assert hit in report.problems and report.exit_code == 1

    with pytest.raises(ContentError) as info:
        build_index(content, tmp_path / "index", HashEmbedder())
    assert hit in info.value.problems
    assert not (tmp_path / "index" / "current").exists()
    return hit


# ---- H1: YAML aliases ----------------------------------------------------------------------------
def test_h1_yaml_alias_bomb_is_refused_with_a_short_located_message(tmp_path):
    hit = refused_everywhere(tmp_path, ALIAS_BOMB, "front-matter.yaml")
    assert (hit.line, hit.col) == (3, 8)  # the first alias, '*a' on line 3
    assert "aliases such as '*a' are not allowed" in hit.message
    assert len(hit.message + hit.hint) < 150  # nothing expanded, nothing quoted at length
    assert "lol" not in hit.format()


def test_h1_an_alias_bomb_in_the_glossary_is_refused_too(tmp_path):
    """glossary.yml reaches every build and page: it is read with the guides' YAML rules."""
    lols = ",".join(['"lol"'] * 9)
    refs = ",".join(["*a"] * 9)  # 81 values from one line; deeper levels multiply as in ALIAS_BOMB
    bomb = f"- term: X\n  expansion: x\n  aliases: &a [{lols}]\n- term: Y\n  expansion: y\n  synonyms: [{refs}]\n"
    (tmp_path / "glossary.yml").write_text(bomb, encoding="utf-8")
    with pytest.raises(ContentError) as info:
        Glossary.load(tmp_path)
    (problem,) = info.value.problems
    assert problem.path.endswith("glossary.yml") and problem.line == 6 and problem.level == "error"
    assert "aliases such as '*a' are not allowed" in problem.message and "lol" not in problem.format()


def test_h1_values_quoted_in_messages_are_truncated(tmp_path):
    long_value = "FP" + "9" * 5_000
    content = content_with(tmp_path, FRONT.replace("applies_to: evergreen", f'applies_to: "{long_value}"') + "Body.\n")
    (hit,) = errors_for(load_guides(content)[1])
    assert "'applies_to' must be 'evergreen'" in hit.message
    assert len(hit.message) < 200 and hit.message.count("9") < 80


@pytest.mark.parametrize(
    "front_matter, message",
    [
        ("title: " + "[" * 3_000 + "\n", "brackets are nested more than 10 deep"),  # RecursionError before
        ("title: " + "1" * 5_000 + "\n", "a value cannot be read"),  # ValueError (int digit limit) before
        ("title:\n  " + "- " * 200 + "x\n", "nested more than 10 levels deep"),
        ("title: x\n" + "junk: " + "y" * 11_000 + "\n", "front matter is 11,0"),
    ],
)
def test_h1_front_matter_that_crashed_or_stalled_the_parser_is_a_located_error(tmp_path, front_matter, message):
    content = content_with(tmp_path, "---\n" + front_matter + "---\n\nBody.\n")
    (hit,) = errors_for(load_guides(content)[1])
    assert message in hit.message and hit.line >= 1 and "(fix: " in hit.format()


def test_h1_taxonomy_aliases_are_refused(tmp_path):
    content = content_with(tmp_path, FRONT + "Body.\n")
    (content / "taxonomy.yml").write_text("a: &a [x, x, x]\nb: &b [*a, *a, *a]\ntags: *b\n", encoding="utf-8")
    with pytest.raises(ContentError) as info:
        load_guides(content)
    assert "aliases" in info.value.problems[0].message


def test_h1_long_front_matter_lists_are_refused_once(tmp_path):
    tags = "\n".join(f"  - tag{i}" for i in range(kc.MAX_LIST_ITEMS + 1))
    content = content_with(tmp_path, FRONT.replace("tags: [psa]", f"tags:\n{tags}") + "Body.\n")
    (hit,) = errors_for(load_guides(content)[1])
    assert f"'tags' has {kc.MAX_LIST_ITEMS + 1} entries; at most {kc.MAX_LIST_ITEMS}" in hit.message


# ---- H2: brackets and the render budget -------------------------------------------------------------
@pytest.mark.parametrize(
    "body, depth",
    [
        ("x " + "[" * 40 + "x" + "]" * 40 + "\n", 11),
        ("[\\]" * 40 + "\n", 11),  # an escaped ']' closes nothing for Python-Markdown
        ("[a](" * 40 + "\n", 11),
        ("![a " * 40 + "\n", 11),
    ],
)
def test_h2_nested_brackets_are_refused_at_the_bracket_that_goes_over(tmp_path, body, depth):
    hit = refused_everywhere(tmp_path, FRONT + INTRO + body, "body.brackets")
    assert f"brackets are nested {depth} deep here" in hit.message
    assert hit.line == BODY_LINE + 2 and hit.col > 1


def test_h2_brackets_are_counted_per_paragraph(tmp_path):
    body = "A stray ( in one paragraph.\n\n" * 40 + "[a [b] (c)](https://example.org)\n"
    guides, problems = load_guides(content_with(tmp_path, FRONT + body))
    assert errors_for(problems) == [] and "hostile-guide" in {g.slug for g in guides}


def test_h2_rendering_over_its_time_budget_raises_render_error_and_is_remembered():
    text = "[\\]" * 2_000  # about 20 s to render in full (quadratic in Python-Markdown)
    with pytest.raises(RenderError) as info:
        render_markdown(text, budget=0.05)
    assert "took more than 0.05 seconds" in info.value.message and info.value.status == 503
    with pytest.raises(RenderError):  # refused at once, even with no budget: no second 20 s
        render_markdown(text, budget=None)


# ---- M3: deep nesting -------------------------------------------------------------------------------
def test_m3_deep_list_is_refused_by_loader_checker_and_build(tmp_path):
    hit = refused_everywhere(tmp_path, FRONT + INTRO + deep_list(40), "body.nesting")
    assert hit.line == BODY_LINE + 2 + kc.MAX_NESTING  # the first line over the limit
    assert f"nested {kc.MAX_NESTING + 1} levels deep" in hit.message


def test_m3_recursion_in_the_renderer_is_a_render_error():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # a 120-level list then needs more frames than allowed
    try:
        with pytest.raises(RenderError) as info:
            render_markdown(deep_list(120), budget=None)
    finally:
        sys.setrecursionlimit(limit)
    assert "nested too deeply" in info.value.message


def test_m3_a_guide_that_cannot_render_gives_a_503_page_not_a_500(tmp_path, monkeypatch):
    content = content_with(tmp_path, FRONT + INTRO + deep_list(10) + "A guide the renderer gives up on.\n")

    def overflow(self, source):  # what a 300-level list did (see the test above for the real thing)
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(markdown.Markdown, "convert", overflow)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(tmp_path / "none")},
        embedder=HashEmbedder(),
    )
    page = app.test_client().get("/guides/hostile-guide")
    api = app.test_client().get("/api/guides/hostile-guide")
    assert page.status_code == 503 and "nested too deeply" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True) and str(tmp_path) not in page.get_data(as_text=True)
    assert api.status_code == 503 and api.get_json()["ok"] is False


def test_m3_a_refused_guide_is_hidden_with_a_plain_explanation(tmp_path):
    content = content_with(tmp_path, FRONT + INTRO + deep_list(40))
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(tmp_path / "none")},
        embedder=HashEmbedder(),
    )
    client = app.test_client()
    page = client.get("/guides/hostile-guide")
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and "Traceback" not in text and "hidden until it is fixed" in text
    assert client.get("/guides/psa-exam-format").status_code == 200  # the others still show


# ---- L10: raw HTML, page ids, link schemes ---------------------------------------------------------
@pytest.mark.parametrize(
    "html, message",
    [
        ("<script>alert(1)</script>", "raw HTML <script> is removed from the page"),
        ('<iframe src="https://example.org"></iframe>', "raw HTML <iframe>"),
        ('<form action="https://evil.example"><button>x</button></form>', "raw HTML <form>"),
        ("<span onclick=alert(1)>x</span>", "attribute 'onclick' on <span>"),
        ('<a href="javascript:alert(1)">x</a>', "'javascript:' addresses are removed"),
        ('<span id="feedback">x</span>', "id 'feedback' is used by the page itself"),
        ("A paragraph.\n{: #q }", "id 'q' is used by the page itself, so the site renames it 'q-section'"),
    ],
)
def test_l10_checker_reports_html_the_site_removes(tmp_path, html, message):
    content = content_with(tmp_path, FRONT + INTRO + html + "\n")
    report = check_content(content, options=CheckOptions(duplicates=False))
    hits = [p for p in errors_for(report.problems) if message in p.message]
    assert hits, [p.format() for p in report.problems]
    assert hits[0].line == BODY_LINE + 2 + html.count("\n") and hits[0].code.startswith("html.")


def test_l10_allowed_html_and_autolinks_pass(tmp_path):
    body = INTRO + "H<sub>2</sub>O, x<sup>2</sup>, <kbd>Ctrl</kbd>, <https://example.org/page> and <br>.\n"
    report = check_content(content_with(tmp_path, FRONT + body), options=CheckOptions(duplicates=False))
    assert [p.format() for p in errors_for(report.problems)] == []


def test_l10_page_ids_never_reach_the_page():
    html = render_markdown(
        '## Feedback\n\nText.\n\nA paragraph.\n{: #q }\n\n<span id="feedback">x</span> <span id="mine">y</span>\n'
    ).html
    assert 'id="feedback"' not in html and 'id="q"' not in html
    assert 'id="feedback-section"' in html and 'id="q-section"' in html and 'id="mine"' in html


def test_l10_build_refuses_a_javascript_link_like_the_checker(tmp_path):
    hit = refused_everywhere(tmp_path, FRONT + INTRO + "See [this](javascript:alert(1)).\n", "link.scheme")
    assert "'javascript:' links are not allowed" in hit.message
    assert (hit.line, hit.col) == (BODY_LINE + 2, 12)  # on the address


# ---- L11: headings --------------------------------------------------------------------------------
def test_l11_too_many_headings_are_refused_at_the_first_one_over(tmp_path):
    body = INTRO + "".join(f"## Section {i}\n\nText.\n\n" for i in range(kc.MAX_HEADINGS + 5))
    hit = refused_everywhere(tmp_path, FRONT + body, "body.headings")
    assert hit.line == BODY_LINE + 2 + 4 * kc.MAX_HEADINGS  # heading number MAX_HEADINGS + 1
    assert f"the limit is {kc.MAX_HEADINGS}" in hit.message


@pytest.mark.parametrize(
    "body, index, code, message, fix",
    [
        (
            "## Question?\n\nText.\n\n### Detail?\n\nx\n\n#### Finer?\n\ny\n\n##### Finest?\n\nz\n",
            12,
            "structure.depth",
            "level-5 heading: guides use at most four levels",
            "use '##', '###' or '####'",
        ),
        (
            "Question?\n---------\n\nText.\n",
            0,
            "structure.setext",
            "underlined heading: search only splits guides at '## ' headings",
            "write it as '## Question?'",
        ),
    ],
)
def test_l11_headings_the_page_cannot_anchor_are_refused(tmp_path, body, index, code, message, fix):
    # the page's table of contents anchors levels 2-4 and underlined headings; the chunker split at
    # '##'-'######' lines only, so either shifted every later search link in the guide
    hit = refused_everywhere(tmp_path, FRONT + INTRO + body, code)
    assert (hit.line, hit.col) == (BODY_LINE + 2 + index, 1)  # the heading's line, after the two of INTRO
    assert hit.message == message and hit.hint.startswith(fix)


def test_l11_a_heading_the_chunker_and_page_see_differently_stops_the_build_and_the_checker(tmp_path):
    # a heading inside a quote is on the page's table of contents; the guide's outline does not see it
    body = INTRO + "## First?\n\nText.\n\n> ## Quoted?\n>\n> Text.\n\n## Last?\n\nText.\n"
    content = content_with(tmp_path, FRONT + body)
    guides, problems = load_guides(content)
    assert "hostile-guide" in {g.slug for g in guides} and not errors_for(problems)
    with pytest.raises(ContentError) as info:
        build_index(content, tmp_path / "index", HashEmbedder())
    (hit,) = info.value.problems
    assert hit.code == "structure.anchors" and hit.path.endswith("hostile-guide.md")
    assert (hit.line, hit.col) == (BODY_LINE + 10, 1)  # '## Last?': the page gave its anchor to the quoted heading
    assert not (tmp_path / "index" / "current").exists()
    report = check_content(content, options=CheckOptions(duplicates=False))
    assert hit in report.problems and report.exit_code == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ("a\n" * (kc.MAX_LINES + 1), "body.lines"),
        ("a" * (kc.MAX_LINE_CHARS + 1) + "\n", "body.line-length"),
        ("<b>x</b> " * (kc.MAX_HTML_TAGS // 2 + 1) + "\n", "body.html"),
        ("x[^1] " * (kc.MAX_FOOTNOTE_REFS + 1) + "\n\n[^1]: a note\n", "body.footnotes"),
        ("\\* " * (kc.MAX_MARKUP_PER_PARAGRAPH + 1) + "\n", "body.markup"),
    ],
)
def test_other_body_limits_are_located_errors(tmp_path, body, code):
    guides, problems = load_guides(content_with(tmp_path, FRONT + body))
    (hit,) = errors_for(problems)
    assert hit.code == code and hit.line >= BODY_LINE and "(fix: " in hit.format()


def test_the_largest_guide_within_the_limits_loads(tmp_path):
    """A guide just inside every limit is accepted: the limits leave room for long real guides."""
    sections = "".join(
        f"## Question {i}?\n\n{'A sentence of an answer. ' * 30}\n\n- a point\n    - a sub-point\n\n" for i in range(60)
    )
    body = (
        INTRO
        + sections
        + '| a | b |\n|---|---|\n| 1 | 2 |\n\n!!! note "A note"\n    Text [with (nested) brackets](https://example.org).\n'
    )
    guides, problems = load_guides(content_with(tmp_path, FRONT + body))
    assert errors_for(problems) == [] and "hostile-guide" in {g.slug for g in guides}
