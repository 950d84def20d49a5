"""kb.content.chunking: one chunk per heading, stable ids, long sections split by paragraph."""

from kb.content.chunking import chunk_guide, plain_text, split_text
from kb.content.guide import load_guides
from kb.content.outline import Outline
from kb.content.render import render_markdown
from tests.conftest import FIXTURE_CONTENT


def guide(slug):
    guides, _ = load_guides(FIXTURE_CONTENT)
    return next(g for g in guides if g.slug == slug)


def with_body(g, body):
    """The guide with another body (and that body's outline)."""
    return type(g)(**{**g.__dict__, "body": body, "outline": Outline.scan(body)})


def test_chunk_per_heading_with_ids_matching_rendered_anchors():
    g = guide("psa-exam-format")
    rendered = render_markdown(g.body)
    chunks = chunk_guide(g, rendered)
    ids = [c.id for c in chunks]
    assert ids[0] == "psa-exam-format#"  # intro, carrying the summary
    assert "psa-exam-format#how-long-is-the-psa-and-how-many-questions" in ids
    sub = next(c for c in chunks if c.anchor == "what-counts-as-a-complete-prescription")
    assert sub.heading_path == ("Which section carries the most marks?", "What counts as a complete prescription?")
    anchors = {a for _, a, _ in rendered.headings}
    assert all(c.anchor in anchors for c in chunks if c.anchor)
    assert sub.embed_text.startswith("How is the PSA laid out? > Which section carries the most marks? > What counts")


def test_long_sections_split_on_paragraphs():
    g = guide("psa-resits")
    body = g.body + "\n\n## A long one?\n\n" + "\n\n".join(f"Paragraph {i} " + "words " * 60 for i in range(12))
    g2 = with_body(g, body)
    chunks = [c for c in chunk_guide(g2, render_markdown(body), max_chars=800) if c.anchor == "a-long-one"]
    assert len(chunks) > 3
    assert chunks[0].id == "psa-resits#a-long-one" and chunks[1].id == "psa-resits#a-long-one~2"
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(c.text.startswith("Paragraph") for c in chunks)


def test_plain_text_strips_markdown():
    assert plain_text("**Bold** and [a link](/guides/x) and `code`") == "Bold and a link and code"


def test_plain_text_keeps_its_output_in_linear_time_forms():
    # the patterns were rewritten so no hostile guide makes them backtrack; what they produce is unchanged
    assert (
        plain_text("Intro:\n\n- one\n- two") == "Intro:\n- one\n- two"
    )  # as before: the blank line before a list goes
    assert plain_text("[a link\nacross lines](https://x.org) and ![alt](p.png)") == "a link\nacross lines and alt"
    assert plain_text('!!! note "Worth knowing"\n    Body.') == "Worth knowing\nBody."
    assert plain_text("| a | b |\n|---|:-:|\n| 1 | 2 |") == "a b\n\n1 2"
    assert plain_text("Note[^1].\n\n[^1]: A source.") == "Note.\n\nA source."
    assert plain_text("<b>bold</b> and 3 < 5") == "bold and 3 < 5"
    assert plain_text("a\n\n\n\n   \n\nb") == "a\n\nb"


def test_heading_text_drops_closing_hashes_without_backtracking():
    g = guide("psa-resits")
    body = "Intro.\n\n## Closed heading ##   \n\nText.\n\n## ## \n\nMore.\n\n## Spaces" + " " * 3000 + "end\n\nLast.\n"
    g2 = with_body(g, body)
    headings = [c.heading for c in chunk_guide(g2, render_markdown(body)) if c.anchor]
    assert headings == ["Closed heading", "", "Spaces end"]  # '## ##' is an empty heading, as on the page


def test_split_text_keeps_paragraphs_whole_and_cuts_a_huge_one_at_a_space():
    assert split_text("short", 100) == ["short"]
    assert split_text("one two\n\nthree four\n\nfive", 12) == ["one two", "three four", "five"]
    assert split_text("one two\n\nthree", 20) == ["one two\n\nthree"]  # paragraphs share a part while they fit
    assert split_text("First sentence here. Second sentence here.", 30) == [
        "First sentence here. Second",
        "sentence here.",
    ]
