"""kb.chunking: one chunk per heading, stable ids, long sections split by paragraph."""

from kb.chunking import chunk_guide, plain_text
from kb.content import load_guides
from kb.render import render_markdown
from tests.conftest import FIXTURE_CONTENT


def guide(slug):
    guides, _ = load_guides(FIXTURE_CONTENT)
    return next(g for g in guides if g.slug == slug)


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
    g2 = type(g)(**{**g.__dict__, "body": body})
    chunks = [c for c in chunk_guide(g2, render_markdown(body), max_chars=800) if c.anchor == "a-long-one"]
    assert len(chunks) > 3
    assert chunks[0].id == "psa-resits#a-long-one" and chunks[1].id == "psa-resits#a-long-one~2"
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(c.text.startswith("Paragraph") for c in chunks)


def test_plain_text_strips_markdown():
    assert plain_text("**Bold** and [a link](/guides/x) and `code`") == "Bold and a link and code"
