"""kb.search.pipeline pure parts: fusion, query parsing, snippets, grouping, parameter checks."""

import shutil

import pytest

from kb.errors import QueryError
from kb.index.build import build_index
from kb.search.pipeline import (
    Hit,
    Searcher,
    Unit,
    group_hits,
    make_snippet,
    parse_query,
    reciprocal_rank_fusion,
    rewrite_query,
)
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder


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


def test_snippet_window_is_where_the_terms_cluster():
    # one lone "psa" early; "bnf" and "psa" together much later: the window goes to the cluster
    text = "PSA. " + "filler " * 60 + "Bring the BNF: the PSA lets you use the BNF throughout. " + "tail " * 60
    snip = make_snippet(text, ["bnf", "psa"], width=120)
    assert snip.startswith("… ") and snip.endswith(" …")
    assert snip.count("<mark>") == 3 and "<mark>PSA</mark>." not in snip
    assert len(snip.replace("<mark>", "").replace("</mark>", "")) <= 120 + 4


def hit(slug, anchor, score=1.0):
    return Hit(
        f"{slug}#{anchor}", slug, slug.title(), "psa", anchor, anchor, f"/guides/{slug}#{anchor}", "", score, 1, 1, 0.5
    )


def test_group_hits_keeps_three_sections_per_guide_in_order():
    hits = [hit("a", "1"), hit("b", "1"), hit("a", "2"), hit("a", "3"), hit("a", "4"), hit("c", "1")]
    groups = group_hits(hits, per_guide=3)
    assert [g.slug for g in groups] == ["a", "b", "c"]
    assert [h.anchor for h in groups[0].hits] == ["1", "2", "3"]
    assert len(group_hits(hits, limit=2)) == 2


@pytest.mark.parametrize(
    "q, limit, mode, param",
    [
        ("", 10, "hybrid", "q"),
        ("x" * 301, 10, "hybrid", "q"),
        ("ok", 0, "hybrid", "limit"),
        ("ok", 51, "hybrid", "limit"),
        ("ok", 5, "fuzzy", "mode"),
    ],
)
def test_parameter_checks_name_the_parameter(q, limit, mode, param):
    with pytest.raises(QueryError) as info:
        Searcher("/nonexistent").check_params(q, limit, mode)
    assert info.value.param == param and param in info.value.message


# ---- query understanding on a small index (deterministic fake encoder) --------------------------
@pytest.fixture(scope="module")
def fake_searcher(tmp_path_factory):
    index = tmp_path_factory.mktemp("fake-index")
    embedder = HashEmbedder()
    build_index(FIXTURE_CONTENT, index, embedder)
    return Searcher(index, embedder)


def test_acronym_and_expansion_are_one_concept(fake_searcher):
    gen = fake_searcher.generation()
    short, long = gen.units(["PSA", "resit"]), gen.units("prescribing safety assessment resit".split())
    assert [u.text for u in long] == ["prescribing safety assessment", "resit"]
    assert short[0].term.term == long[0].term.term == "PSA" and short[0].exact and long[0].exact
    assert {f.casefold() for f, _ in short[0].forms} == {f.casefold() for f, _ in long[0].forms}
    assert short[0].semantic_text == long[0].semantic_text == "Prescribing Safety Assessment (PSA)"
    assert gen.units(["FY1"])[0].term.term == "F1"  # aliases too
    for mode in ("keyword", "semantic", "hybrid"):
        a, b = (
            fake_searcher.search("PSA resit", mode=mode),
            fake_searcher.search("Prescribing Safety Assessment resit", mode=mode),
        )
        assert [h.id for h in a.hits] == [h.id for h in b.hits] and a.hits
    res = fake_searcher.search("PSA")
    assert res.expansions == ("Prescribing Safety Assessment",) and "Prescribing Safety Assessment" in res.highlight


def test_expansion_counts_as_one_word_and_does_not_swamp_the_query(fake_searcher):
    # "PSA" must not outweigh "question banks": the study-group section about question banks wins
    hits = fake_searcher.search("PSA question banks", mode="keyword").hits
    assert hits[0].slug == "study-groups"


def test_plain_words_and_function_words(fake_searcher):
    gen = fake_searcher.generation()
    units = gen.units("how do i get my DOPS signed off".split())
    assert [u.function_word for u in units] == [True, True, True, False, True, False, False, False]
    assert units[5] == Unit("DOPS", units[5].term, units[5].forms, True)


def test_lowercase_acronym_that_is_an_ordinary_word_stays_a_word(tmp_path):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    with open(content / "glossary.yml", "a", encoding="utf-8") as fh:
        fh.write(
            "- term: PLACE\n  expansion: Placement Learning And Clinical Experience\n  meaning: A made-up acronym for this test.\n"
        )
    build_index(content, tmp_path / "index", HashEmbedder())
    gen = Searcher(tmp_path / "index", HashEmbedder()).generation()
    assert gen.units(["PLACE"])[0].term is not None
    assert gen.units(["place"])[0].term is None  # "place" is an everyday word in the guides
    assert gen.units(["psa"])[0].term.term == "PSA"  # "psa" never appears in lowercase: still the acronym


def test_clear_short_form_of_a_long_name(fake_searcher):
    gen = fake_searcher.generation()
    unit = gen.units(["prescribing", "safety"])[0]
    assert unit.term.term == "PSA" and unit.exact
    assert gen.units(["prescribing", "exam"])[0].term is None  # "prescribing" alone is not the PSA


def test_typo_is_searched_corrected_and_reported(fake_searcher):
    res = fake_searcher.search("how long is the presribing saftey assesment")
    assert res.corrected and res.did_you_mean == "how long is the prescribing safety assessment"
    assert res.hits[0].slug == "psa-exam-format"
    off = fake_searcher.search("how long is the presribing saftey assesment", spellcheck=False)
    assert off.did_you_mean == res.did_you_mean and off.corrected is False  # offered, not applied
    kw = fake_searcher.search("presribing", mode="keyword", spellcheck=False)
    assert kw.hits == ()  # nothing matches the misspelling itself


@pytest.mark.parametrize("query", ["Resits for the Prescribng exam", "CCL19 in dLNs", "zxqv blorf"])
def test_no_correction_for_names_identifiers_or_hopeless_words(fake_searcher, query):
    res = fake_searcher.search(query, mode="keyword")
    assert res.did_you_mean is None and not res.corrected


def test_nonsense_is_not_confident(fake_searcher):
    res = fake_searcher.search("zxqv blorf")
    assert res.confident is False and all(h.weak or h.keyword_rank is None for h in res.hits)


def test_rewrite_query_leaves_quoted_phrases_alone():
    assert (
        rewrite_query('"presribing" presribing  saftey', {"presribing": "prescribing", "saftey": "safety"})
        == '"presribing" prescribing safety'
    )


def test_section_whose_heading_is_the_question_comes_first(fake_searcher):
    res = fake_searcher.search("how long is the PSA and how many questions", mode="keyword")
    assert res.hits[0].anchor == "how-long-is-the-psa-and-how-many-questions"
    res = fake_searcher.search("which section carries the most marks", mode="keyword")
    assert res.hits[0].anchor == "which-section-carries-the-most-marks"


def test_a_guide_title_is_found_by_phrase_and_by_meaning(fake_searcher):
    # "laid out" is only in the title of psa-exam-format: titles are not scored word by word, but a
    # quoted phrase may match them, and every section's embedding carries its guide's title
    hits = fake_searcher.search('"laid out"', mode="keyword").hits
    assert hits and {h.slug for h in hits} == {"psa-exam-format"}
    assert fake_searcher.search("laid", mode="keyword").hits == ()
    assert fake_searcher.search("laid", mode="semantic").hits[0].slug == "psa-exam-format"
