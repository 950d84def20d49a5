"""kb.search pure parts: fusion, query parsing, snippets, grouping, parameter checks."""

import pytest

from kb.errors import QueryError
from kb.search import Hit, Searcher, group_hits, make_snippet, parse_query, reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert [d for d, _ in fused] == ["a", "c", "b"]


def test_rrf_weights_and_ties():
    assert [d for d, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]  # tie keeps first-seen order
    assert [d for d, _ in reciprocal_rank_fusion([["x"], ["y"]], weights=[1, 2])] == ["y", "x"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["x"]], weights=[1, 2])
    assert reciprocal_rank_fusion([]) == []


def test_parse_query_phrases_and_words():
    pq = parse_query('"preference informed allocation" how  does it work\x00')
    assert pq.phrases == ("preference informed allocation",)
    assert pq.words == ("how", "does", "it", "work")
    assert parse_query('title:(( "unclosed').words == ("title", "unclosed")


def test_snippet_marks_terms_and_escapes_html():
    text = "Intro words. <b>The</b> BNF is the only resource allowed in the PSA exam. More text follows here."
    snip = make_snippet(text, ["bnf", "psa"])
    assert "<mark>BNF</mark>" in snip and "<mark>PSA</mark>" in snip
    assert "<b>" not in snip and "&lt;b&gt;" in snip


def hit(slug, anchor, score=1.0):
    return Hit(f"{slug}#{anchor}", slug, slug.title(), "psa", anchor, anchor, f"/guides/{slug}#{anchor}", "", score, 1, 1, 0.5)


def test_group_hits_keeps_three_sections_per_guide_in_order():
    hits = [hit("a", "1"), hit("b", "1"), hit("a", "2"), hit("a", "3"), hit("a", "4"), hit("c", "1")]
    groups = group_hits(hits, per_guide=3)
    assert [g.slug for g in groups] == ["a", "b", "c"]
    assert [h.anchor for h in groups[0].hits] == ["1", "2", "3"]
    assert len(group_hits(hits, limit=2)) == 2


@pytest.mark.parametrize(
    "q, limit, mode, param",
    [("", 10, "hybrid", "q"), ("x" * 301, 10, "hybrid", "q"), ("ok", 0, "hybrid", "limit"), ("ok", 51, "hybrid", "limit"), ("ok", 5, "fuzzy", "mode")],
)
def test_parameter_checks_name_the_parameter(q, limit, mode, param):
    with pytest.raises(QueryError) as info:
        Searcher("/nonexistent").check_params(q, limit, mode)
    assert info.value.param == param and param in info.value.message
