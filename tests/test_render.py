"""kb.content.render: sanitising, anchors, table of contents, glossary tooltips."""

import re
from pathlib import Path

import pytest

from kb.content import render
from kb.content.glossary import Glossary
from kb.content.render import PAGE_IDS, render_markdown
from tests.conftest import FIXTURE_CONTENT

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "<svg onload=alert(1)><circle/></svg>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="width: expression(alert(1))">x</p>',
    "<iframe src=https://example.org></iframe>",
    "<body onload=alert(1)>",
    '<a href="  javascript:alert(1)">x</a>',
    "<scr<script>ipt>alert(1)</script>",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<details open ontoggle=alert(1)>",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<object data="javascript:alert(1)"></object>',
    "[a](&#106;avascript:alert(1))",
    '<img src="x" onerror="alert(1)"/>',
    "<style>body{display:none}</style>",
]


@pytest.mark.parametrize("vector", XSS)
def test_xss_vectors_are_neutralised(vector):
    html = render_markdown(f"Text before.\n\n{vector}\n\nText after.").html.lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "ontoggle",
        "javascript:",
        "data:text",
        "<iframe",
        "<svg",
        "<style",
        "style=",
        "<object",
        "<form",
        "expression(",
    ):
        assert bad not in html, (vector, html)


def test_headings_get_stable_anchors_and_toc():
    r = render_markdown(
        "Intro\n\n## Can I use the BNF in the PSA?\n\nYes.\n\n### What about paper copies?\n\nNo.\n\n## Can I "
        "use the BNF in the PSA?\n\nAgain."
    )
    assert '<h2 id="can-i-use-the-bnf-in-the-psa">' in r.html
    assert [a for _, a, _ in r.headings] == [
        "can-i-use-the-bnf-in-the-psa",
        "what-about-paper-copies",
        "can-i-use-the-bnf-in-the-psa_1",
    ]
    assert r.toc[0].children[0].anchor == "what-about-paper-copies"


def test_tables_footnotes_admonitions():
    r = render_markdown(
        '| a | b |\n|---|---|\n| 1 | 2 |\n\nA note[^1].\n\n[^1]: The footnote.\n\n!!! warning "Old advice"\n    Body.\n'
    )
    assert "<table>" in r.html and "<td>1</td>" in r.html
    assert 'class="footnote' in r.html
    assert 'class="admonition warning"' in r.html and "Old advice" in r.html


def test_glossary_abbr_tooltips():
    g = Glossary.load(FIXTURE_CONTENT)
    html = render_markdown("Sit the PSA before F1.", g).html
    assert '<abbr title="Prescribing Safety Assessment">PSA</abbr>' in html
    assert '<abbr title="Foundation Year 1">F1</abbr>' in html


def test_page_ids_cover_every_id_the_templates_use():
    """A guide element may not take an id the page around it uses; PAGE_IDS must list them all."""
    templates = Path(render.__file__).parents[1] / "web" / "templates"
    ids: set[str] = set()
    for path in templates.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        ids |= set(re.findall(r'\bid="([^"{]+)"', text))
        for input_id in re.findall(r'\binput_id="([^"]+)"', text):  # _search_box.html adds these suffixes
            ids |= {input_id, f"{input_id}-list", f"{input_id}-msg", f"{input_id}-panel"}
        ids |= set(re.findall(r'\bform_id="([^"]+)"', text))
    assert ids and "feedback" in ids and "q" in ids
    assert ids <= PAGE_IDS, sorted(ids - PAGE_IDS)
    rendered = render_markdown("## Feedback\n\nText.\n\n## Main\n\nMore.\n")
    assert [a for _, a, _ in rendered.headings] == ["feedback-section", "main-section"]
