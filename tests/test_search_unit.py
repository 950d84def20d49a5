"""kb.search: the request, each stage alone (plan, retrieve, fuse, present) and the pipeline on a small index."""

import shutil

import numpy as np
import pytest

from kb.errors import QueryError
from kb.index.build import build_index
from kb.search.fuse import RRF_K, by_evidence, fuse, heading_match, rank, reciprocal_rank_fusion
from kb.search.pipeline import Searcher
from kb.search.plan import Unit, parse_query, plan, rewrite_query
from kb.search.present import Hit, card_candidates, group_hits, make_snippet, present
from kb.search.request import SearchRequest
from kb.search.retrieve import Candidates, Filters, keyword_candidates, query_vector, retrieve, semantic_candidates
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


def test_snippet_drops_list_bullets_and_joins_lines():
    text = "The year above mostly agrees on this:\n- Before the first night: sleep normally.\n- Between nights: rest."
    snip = make_snippet(text, ["night"])
    assert "- " not in snip and "\n" not in snip
    assert "this: Before the first <mark>night</mark>: sleep normally. Between <mark>nights</mark>" in snip


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
        ("?!", 10, "hybrid", "q"),
        ("x" * 301, 10, "hybrid", "q"),
        ("ok", 0, "hybrid", "limit"),
        ("ok", 51, "hybrid", "limit"),
        ("ok", 5, "fuzzy", "mode"),
    ],
)
def test_parameter_checks_name_the_parameter(q, limit, mode, param):
    with pytest.raises(QueryError) as info:
        SearchRequest(q, limit, mode).check(max_query_length=300, max_limit=50)
    assert info.value.param == param and param in info.value.message
    with pytest.raises(QueryError) as searched:  # the searcher refuses the same request before touching an index
        Searcher("/nonexistent").search(SearchRequest(q, limit, mode))
    assert searched.value.message == info.value.message


SETTINGS = {"KB_DEFAULT_LIMIT": 10, "KB_MAX_LIMIT": 50, "KB_MAX_QUERY_LENGTH": 300}


def test_request_from_args_parses_and_defaults():
    args = {"q": "psa resit", "mode": " Keyword ", "limit": "7", "category": "psa", "tag": "resits", "spell": "off"}
    request = SearchRequest.from_args(args, SETTINGS, {"psa": None}, {"resits"})
    assert request == SearchRequest("psa resit", 7, "keyword", "psa", "resits", spellcheck=False)
    assert request.filters == {"category": "psa", "tag": "resits"}
    assert SearchRequest.from_args({"q": "psa", "limit": "", "category": " "}, SETTINGS) == SearchRequest("psa")
    with pytest.raises(AttributeError):
        request.limit = 8  # frozen: every stage sees the request as it was checked


@pytest.mark.parametrize(
    "args, param, message",
    [
        ({"q": "ok", "limit": "ten"}, "limit", "parameter 'limit' must be a whole number from 1 to 50; got 'ten'"),
        ({"q": "ok", "limit": "0"}, "limit", "parameter 'limit' must be a whole number from 1 to 50; got 0"),
        (
            {"q": "ok", "mode": "fuzzy"},
            "mode",
            "parameter 'mode' must be one of hybrid, keyword, semantic; got 'fuzzy'",
        ),
        ({"q": "ok", "category": "x"}, "category", "parameter 'category' must be one of psa, placements; got 'x'"),
        ({"q": "ok", "tag": "x"}, "tag", "parameter 'tag' must be a tag listed at /tags; got 'x'"),
        ({"q": " "}, "q", "parameter 'q' is required: type a question or a few words"),
        ({"mode": "fuzzy", "limit": "x"}, "limit", "parameter 'limit' must be a whole number from 1 to 50; got 'x'"),
    ],
)
def test_request_from_args_refuses_the_first_bad_parameter(args, param, message):
    with pytest.raises(QueryError) as info:
        SearchRequest.from_args(args, SETTINGS, ("psa", "placements"), {"resits"})
    assert (info.value.param, info.value.message) == (param, message)


# ---- query understanding on a small index (deterministic fake encoder) --------------------------
@pytest.fixture(scope="module")
def fake_searcher(tmp_path_factory):
    index = tmp_path_factory.mktemp("fake-index")
    embedder = HashEmbedder()
    build_index(FIXTURE_CONTENT, index, embedder)
    return Searcher(index, embedder)


# ---- each stage alone --------------------------------------------------------------------------
def test_plan_of_a_misspelt_query(fake_searcher):
    gen = fake_searcher.generation()
    qp = plan(gen, SearchRequest("how long is the presribing saftey assesment"))
    assert qp.did_you_mean == "how long is the prescribing safety assessment" and qp.corrected
    assert [u.text for u in qp.units][-1] == "prescribing safety assessment" and qp.units[-1].term.term == "PSA"
    assert [u.text for u in qp.scoring] == ["long", "the", "prescribing safety assessment"]  # question words do not
    assert qp.expansions == ("PSA",) and "PSA" in qp.highlight
    offered = plan(gen, SearchRequest("how long is the presribing saftey assesment", spellcheck=False))
    assert offered.did_you_mean == qp.did_you_mean and not offered.corrected
    assert [u.text for u in offered.units][-3:] == ["presribing", "saftey", "assesment"]
    assert plan(gen, SearchRequest('"laid out" rota')).phrases == ("laid out",)


def test_filters_admit_by_category_and_tag(fake_searcher):
    psa = fake_searcher.generation().by_id["psa-resits#"]
    assert Filters().admits(psa) and not Filters()
    assert Filters("psa").admits(psa) and Filters(tag="resits").admits(psa) and Filters("psa", "resits")
    assert not Filters("placements").admits(psa) and not Filters("psa", "ward-rounds").admits(psa)
    assert not Filters().admits(None)


@pytest.mark.parametrize("filters", [Filters("psa"), Filters(tag="study-groups"), Filters("placements", "ward-rounds")])
def test_filters_hold_for_both_engines(fake_searcher, filters):
    gen = fake_searcher.generation()
    qp = plan(gen, SearchRequest("exam questions study ward round resit"))
    every = keyword_candidates(gen, qp, Filters(), pool=len(gen.chunks))
    keyword = keyword_candidates(gen, qp, filters, pool=50)
    assert keyword and keyword == [cid for cid in every if filters.admits(gen.by_id[cid])]  # same order, fewer
    semantic = semantic_candidates(gen, qp, query_vector(qp, fake_searcher.embedder), filters, pool=50)
    assert semantic and all(filters.admits(gen.by_id[cid]) for cid, _ in semantic)
    assert len(semantic) == sum(filters.admits(c) for c in gen.chunks)  # every admitted section is scored
    found = retrieve(gen, qp, SearchRequest("x", mode="keyword", category=filters.category, tag=filters.tag), None)
    assert found.keyword == tuple(keyword)


def test_retrieve_asks_only_the_engines_of_the_mode(fake_searcher):
    gen = fake_searcher.generation()
    qp = plan(gen, SearchRequest("psa resit"))
    keyword_only = retrieve(gen, qp, SearchRequest("psa resit", mode="keyword"), embedder=None)
    assert keyword_only.keyword and keyword_only.semantic == ()
    semantic_only = retrieve(gen, qp, SearchRequest("psa resit", mode="semantic"), fake_searcher.embedder)
    assert semantic_only.keyword == () and semantic_only.semantic


def test_fuse_order_in_each_mode():
    found = Candidates(keyword=("a", "b"), semantic=(("c", 0.9), ("a", 0.5), ("d", 0.1)))
    assert fuse("keyword", found) == [("a", 1 / (RRF_K + 1)), ("b", 1 / (RRF_K + 2))]
    assert fuse("semantic", found) == [("c", 0.9), ("a", 0.5), ("d", 0.1)]
    # hybrid: a is found by both; the weak semantic-only d comes after every fused hit
    assert [cid for cid, _ in fuse("hybrid", found)] == ["a", "c", "b", "d"]
    assert fuse("hybrid", Candidates()) == []


def test_heading_boost_lifts_the_section_whose_heading_is_the_query(fake_searcher):
    gen = fake_searcher.generation()
    qp = plan(gen, SearchRequest("which section carries the most marks"))
    marks = "psa-exam-format#which-section-carries-the-most-marks"
    found = Candidates(keyword=("psa-exam-format#", "psa-resits#", marks))
    assert [cid for cid, _ in fuse("keyword", found)][-1] == marks
    assert rank(gen, found, qp, SearchRequest("which section carries the most marks", mode="keyword"))[0][0] == marks
    semantic = Candidates(semantic=(("psa-resits#", 0.9), (marks, 0.5)))
    request = SearchRequest("which section carries the most marks", mode="semantic")
    assert [cid for cid, _ in rank(gen, semantic, qp, request)] == ["psa-resits#", marks]  # cosine alone


def test_present_groups_by_guide_with_snippets_and_ranks(fake_searcher):
    gen = fake_searcher.generation()
    request = SearchRequest("psa bnf", limit=2, category="psa")
    qp = plan(gen, request)
    ids = ["psa-exam-format#can-i-use-the-bnf", "psa-resits#", "psa-exam-format#", "study-groups#"]
    found = Candidates(keyword=(ids[0], ids[2]), semantic=((ids[1], 0.8), (ids[3], 0.1)))
    response = present(gen, request, qp, found, [(cid, 1.0 / i) for i, cid in enumerate(ids, 1)], started=0.0)
    assert [h.id for h in response.hits] == ids[:2]  # `limit` sections
    assert [(g.slug, [h.id for h in g.hits]) for g in response.groups] == [
        ("psa-exam-format", [ids[0], ids[2]]),
        ("psa-resits", [ids[1]]),
    ]  # `limit` guides, each with its sections in rank order
    first, second = response.hits
    assert (first.keyword_rank, first.semantic_rank, first.weak) == (1, None, False)
    assert (second.keyword_rank, second.semantic_rank, second.semantic_score, second.weak) == (None, 1, 0.8, False)
    assert "<mark>" in first.snippet and response.confident
    assert response.filters == {"category": "psa", "tag": None} and response.coverage is not None
    weak = present(gen, request, qp, Candidates(semantic=((ids[3], 0.1),)), [(ids[3], 0.1)], started=0.0)
    assert weak.hits[0].weak and not weak.confident


def test_the_card_weighs_the_top_hit_only_with_its_exact_cosine(fake_searcher):
    """The verdict and card weigh the first section of the first guide; a keyword-only hit gets its own cosine."""
    gen = fake_searcher.generation()
    request = SearchRequest("psa bnf", limit=2)
    qp = plan(gen, request)
    top, runner_up = "psa-exam-format#can-i-use-the-bnf", "psa-resits#"
    vector = gen.vector_of(runner_up)
    found = Candidates(keyword=(top,), semantic=((runner_up, 0.9),), vector=vector)
    response = present(gen, request, qp, found, [(top, 1.0), (runner_up, 0.5)], started=0.0)
    weighed = response.coverage.candidates
    assert [c.chunk.id for c in weighed] == [top]  # the runner-up guide is not weighed, however close
    exact = float(np.dot(gen.vector_of(top), vector))
    assert weighed[0].cosine == pytest.approx(exact) and exact < 0.9  # not the pool's lowest cosine (0.9)
    in_pool = Candidates(keyword=(top,), semantic=((top, 0.42),), vector=vector)
    assert card_candidates(gen, response.groups, in_pool)[0][1] == 0.42  # the engine's own score
    assert card_candidates(gen, response.groups, Candidates(keyword=(top,)))[0][1] is None  # keyword mode
    assert card_candidates(gen, (), found) == []


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
            fake_searcher.search(SearchRequest("PSA resit", mode=mode)),
            fake_searcher.search(SearchRequest("Prescribing Safety Assessment resit", mode=mode)),
        )
        assert [h.id for h in a.hits] == [h.id for h in b.hits] and a.hits
    res = fake_searcher.search(SearchRequest("PSA"))
    assert res.expansions == ("Prescribing Safety Assessment",) and "Prescribing Safety Assessment" in res.highlight


def test_expansion_counts_as_one_word_and_does_not_swamp_the_query(fake_searcher):
    # "PSA" must not outweigh "question banks": the study-group section about question banks wins
    hits = fake_searcher.search(SearchRequest("PSA question banks", mode="keyword")).hits
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
            "- term: PLACE\n  expansion: Placement Learning And Clinical Experience\n  meaning: A made-up "
            "acronym for this test.\n"
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
    res = fake_searcher.search(SearchRequest("how long is the presribing saftey assesment"))
    assert res.corrected and res.did_you_mean == "how long is the prescribing safety assessment"
    assert res.hits[0].slug == "psa-exam-format"
    off = fake_searcher.search(SearchRequest("how long is the presribing saftey assesment", spellcheck=False))
    assert off.did_you_mean == res.did_you_mean and off.corrected is False  # offered, not applied
    kw = fake_searcher.search(SearchRequest("presribing", mode="keyword", spellcheck=False))
    assert kw.hits == ()  # nothing matches the misspelling itself


@pytest.mark.parametrize("query", ["Resits for the Prescribng exam", "CCL19 in dLNs", "zxqv blorf"])
def test_no_correction_for_names_identifiers_or_hopeless_words(fake_searcher, query):
    res = fake_searcher.search(SearchRequest(query, mode="keyword"))
    assert res.did_you_mean is None and not res.corrected


def test_nonsense_is_not_confident(fake_searcher):
    res = fake_searcher.search(SearchRequest("zxqv blorf"))
    assert res.confident is False and all(h.weak or h.keyword_rank is None for h in res.hits)


def test_rewrite_query_leaves_quoted_phrases_alone():
    assert (
        rewrite_query('"presribing" presribing  saftey', {"presribing": "prescribing", "saftey": "safety"})
        == '"presribing" prescribing safety'
    )


def test_section_whose_heading_is_the_question_comes_first(fake_searcher):
    res = fake_searcher.search(SearchRequest("how long is the PSA and how many questions", mode="keyword"))
    assert res.hits[0].anchor == "how-long-is-the-psa-and-how-many-questions"
    res = fake_searcher.search(SearchRequest("which section carries the most marks", mode="keyword"))
    assert res.hits[0].anchor == "which-section-carries-the-most-marks"


def test_a_guide_title_is_found_by_phrase_and_by_meaning(fake_searcher):
    # "laid out" is only in the title of psa-exam-format: titles are not scored word by word, but a
    # quoted phrase may match them, and every section's embedding carries its guide's title
    hits = fake_searcher.search(SearchRequest('"laid out"', mode="keyword")).hits
    assert hits and {h.slug for h in hits} == {"psa-exam-format"}
    assert fake_searcher.search(SearchRequest("laid", mode="keyword")).hits == ()
    assert fake_searcher.search(SearchRequest("laid", mode="semantic")).hits[0].slug == "psa-exam-format"


def test_hybrid_ranking_puts_the_section_whose_text_answers_first(fake_searcher):
    """Section choice: of two sections of one guide, the one whose text is closer in meaning leads."""
    gen = fake_searcher.generation()
    request = SearchRequest("which section carries the most marks")
    qp = plan(gen, request)
    marks = "psa-exam-format#which-section-carries-the-most-marks"
    other = "psa-exam-format#"
    fused = [(other, 2.0 / 61), (marks, 1.9 / 61)]
    closer = gen.vector_of(marks)  # a query vector equal to the marks section's own
    reordered = by_evidence(gen, fused, qp, closer, top=2, match=heading_match(gen, qp))
    assert [cid for cid, _ in reordered] == [marks, other]
    # beyond `top` the order is left alone
    assert [cid for cid, _ in by_evidence(gen, fused, qp, closer, top=1, match=heading_match(gen, qp))] == [
        other,
        marks,
    ]
