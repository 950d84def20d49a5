"""kb.content.outline: one scan of a guide body gives its headings, sections and the page's anchors."""

import re

import pytest

from kb.content.chunking import chunk_guide
from kb.content.glossary import Glossary
from kb.content.guide import load_guides
from kb.content.outline import Outline
from kb.content.render import render_markdown
from tests.conftest import ROOT, content_today

BODY = """Intro with `## not a heading`.

## What is `the PSA`? ##

Text.

```
## code, not a heading
```

<!--
## commented out
-->

### Sub?

More.

# Title again

## Last?
"""


def test_scan_finds_headings_outside_code_and_comments_with_file_lines():
    outline = Outline.scan(BODY, first_line=13)
    assert [(h.level, h.text, h.index, h.line) for h in outline.headings] == [
        (2, "What is `the PSA`?", 2, 15),
        (3, "Sub?", 14, 27),
        (1, "Title again", 18, 31),
        (2, "Last?", 20, 33),
    ]
    assert outline.refusals("g.md") == []


def test_sections_split_at_the_chosen_levels_without_their_heading_lines():
    outline = Outline.scan(BODY)
    spans = [(h.text if h else None, start, end) for h, start, end in outline.sections(min_level=2)]
    assert spans == [(None, 0, 2), ("What is `the PSA`?", 3, 14), ("Sub?", 15, 20), ("Last?", 21, 22)]
    assert "# Title again" in outline.lines[15:20]  # a level-1 line stays in its section's text
    assert [h.text if h else None for h, _, _ in outline.sections()] == [
        None,
        "What is `the PSA`?",
        "Sub?",
        "Title again",
        "Last?",
    ]


def test_anchored_takes_the_rendered_pages_ids_in_order():
    body = "## Same?\n\nA.\n\n### Deeper?\n\nB.\n\n## Same?\n\nC.\n"
    outline, problem = Outline.scan(body).anchored(render_markdown(body).headings, "g.md")
    assert problem is None
    assert [h.anchor for h in outline.headings] == ["same", "deeper", "same_1"]


@pytest.mark.parametrize(
    "body, line",
    [
        ("## A?\n\nText.\n\n> ## Quoted?\n\n## B?\n\nText.\n", 7),  # the page anchors a heading the scan does not see
        ("## A?\n\nText.\n\n   ## Indented?\n\n## B?\n\nText.\n", 5),  # and the other way round
        ("## A?\n\nText.\n\n##### Deep?\n\nText.\n", 5),  # the chunker splits where the page has no anchor
    ],
)
def test_anchored_reports_where_the_page_and_the_outline_part(body, line):
    outline, problem = Outline.scan(body).anchored(render_markdown(body).headings, "g.md")
    assert problem is not None and problem.code == "structure.anchors"
    assert (problem.path, problem.line, problem.col, problem.level) == ("g.md", line, 1, "error")


def test_refusals_are_levels_below_the_table_of_contents_and_underlined_headings():
    body = "Intro.\n\n###### Six?\n\nText.\n\nUnderlined\n==========\n\n- a list item\n---\n\n| a |\n---\n"
    problems = Outline.scan(body, first_line=10).refusals("g.md")
    assert [(p.line, p.col, p.code) for p in problems] == [(12, 1, "structure.depth"), (16, 1, "structure.setext")]
    assert problems[1].hint.startswith("write it as '## Underlined'")


REAL_CONTENT = ROOT / "content"


def test_every_real_guide_has_chunk_anchors_equal_to_its_page_heading_ids():
    guides, problems = load_guides(REAL_CONTENT, content_today())
    assert guides and not [p for p in problems if p.level == "error"]
    glossary = Glossary.load(REAL_CONTENT)
    for guide in guides:
        rendered = render_markdown(guide.body, glossary)
        page_ids = re.findall(r'<h[2-4] id="([^"]+)"', rendered.html)
        outline, problem = guide.outline.anchored(rendered.headings, guide.path)
        assert problem is None, problem.format()
        assert [h.anchor for h in outline.headings if h.level >= 2] == page_ids, guide.path
        chunk_anchors = list(dict.fromkeys(c.anchor for c in chunk_guide(guide, rendered) if c.anchor))
        assert chunk_anchors and set(chunk_anchors) <= set(page_ids), guide.path
        # a section with no text of its own (only sub-sections) has no chunk; every other one does
        assert [a for a in page_ids if a in chunk_anchors] == chunk_anchors, guide.path
