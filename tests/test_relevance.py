"""Relevance regression: the labelled student queries over the real guides, with the real model.

The labelled set (tests/relevance/student_queries.yml) runs through the same search the site uses.
Floors are set a margin below what `python scripts/eval_search.py` measured on this content
(docs/BENCHMARKS.md, "Search quality"): a change that makes search clearly worse fails here, and
`python scripts/eval_search.py --misses` shows which queries went wrong. The API and page promises
of the search (acronyms, typos, phrases, filters, did-you-mean, highlighting) are checked on the
same real index.
"""

import re

import pytest

from app import create_app
from kb.index.build import build_index
from kb.search.pipeline import Searcher
from kb.search.request import SearchRequest
from kb.tools.evaluation import DEFAULT_QUERIES, evaluate, load_judgements
from tests.conftest import ROOT, content_today

pytestmark = pytest.mark.slow

CONTENT = ROOT / "content"
# Floors for the labelled set as it is now: 315 queries over 77 guides, every judgement completed against
# all guides (docs/BENCHMARKS.md). Measured with section choice by the text: MRR@10 0.928, Recall@5 0.960,
# nDCG@10 0.861 (0.911, 0.960, 0.831 before it). The floors sit about 0.02 under, for a ranking change that
# moves a few queries. The 123-query set over 45 guides had floors 0.92, 0.95, 0.88; the larger set is harder.
HYBRID_MRR_FLOOR = 0.91
HYBRID_RECALL5_FLOOR = 0.95
HYBRID_NDCG_FLOOR = 0.84


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, real_embedder):
    index = tmp_path_factory.mktemp("real-index")
    build_index(CONTENT, index, real_embedder, today=content_today())
    return index


@pytest.fixture(scope="module")
def real_searcher(real_index, real_embedder):
    return Searcher(real_index, real_embedder)


@pytest.fixture(scope="module")
def real_client(real_index, real_embedder):
    app = create_app(
        {
            "TESTING": True,
            "KB_CONTENT_DIR": str(CONTENT),
            "KB_INDEX_DIR": str(real_index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_LOG_SEARCHES": False,
            "KB_TODAY": content_today().isoformat(),
        },
        embedder=real_embedder,
    )
    return app.test_client()


def test_labelled_set_meets_the_floors(real_searcher):
    judged = load_judgements(DEFAULT_QUERIES)
    assert len(judged) >= 80
    results = evaluate(real_searcher, judged)
    scores = {mode: s.summary() for mode, s in results.items()}
    hybrid = scores["hybrid"]
    misses = [r.query for r in results["hybrid"].results if r.rr < 1]
    assert hybrid["mrr@10"] >= HYBRID_MRR_FLOOR, (scores, misses)
    assert hybrid["recall@5"] >= HYBRID_RECALL5_FLOOR, scores
    assert hybrid["ndcg@10"] >= HYBRID_NDCG_FLOOR, scores
    assert hybrid["ndcg@10"] >= max(scores["keyword"]["ndcg@10"], scores["semantic"]["ndcg@10"]), scores


def top(client, query: str, **params) -> dict:
    data = client.get("/api/search", query_string={"q": query, **params}).get_json()
    assert data["ok"], data
    return data


def test_acronym_expansion_and_typos_reach_the_same_guide(real_client):
    short, long, typo = (
        top(real_client, "PSA"),
        top(real_client, "prescribing safety assessment"),
        top(real_client, "presribing saftey"),
    )
    assert (
        short["groups"][0]["slug"]
        == long["groups"][0]["slug"]
        == typo["groups"][0]["slug"]
        == "psa-format-and-sections"
    )
    assert short["groups"][0]["sections"][0]["anchor"] == "what-is-the-psa-and-who-runs-it"
    assert "Prescribing Safety Assessment" in short["expansions"] and "PSA" in long["expansions"]
    assert typo["did_you_mean"] == "prescribing safety" and typo["corrected"] is True
    assert short["did_you_mean"] is None and long["did_you_mean"] is None


def test_phrase_and_category_filter_on_real_guides(real_searcher, real_client):
    res = real_searcher.search(SearchRequest('"preference informed allocation"', category="applications", limit=20))
    assert res.hits
    phrase = re.compile(r"preference\s+informed\s+allocation", re.I)
    gen = real_searcher.generation()
    for h in res.hits:
        assert h.category == "applications"
        chunk = gen.by_id[h.id]
        assert phrase.search(f"{chunk.title}\n{' '.join(chunk.heading_path)}\n{chunk.text}"), h.id
    data = top(real_client, '"preference informed allocation"', category="applications", limit=50)
    assert data["groups"] and {g["category"] for g in data["groups"]} == {"applications"}
    # the phrase occurs in other categories too, so the filter is doing the work
    unfiltered = top(real_client, '"preference informed allocation"', limit=50)
    assert {g["category"] for g in unfiltered["groups"]} - {"applications"}


def test_tag_filter(real_client):
    data = top(real_client, "resit", tag="resits", limit=50)
    assert data["groups"]
    for group in data["groups"]:
        assert "resits" in real_client.get(f"/api/guides/{group['slug']}").get_json()["guide"]["tags"]


def test_clear_keyword_hit_is_not_buried(real_searcher):
    res = real_searcher.search(SearchRequest("F1CC"))
    assert res.hits[0].keyword_rank is not None and res.confident


@pytest.mark.parametrize("query", ["zxqv blorf", "qwpl vrrt xkcd"])
def test_nonsense_is_never_a_confident_answer(real_client, query):
    assert top(real_client, query)["confident"] is False


def test_search_page_says_what_it_searched(real_client):
    html = real_client.get("/search", query_string={"q": "presribing saftey"}).get_data(as_text=True)
    assert "Showing results for" in html and "search instead for" in html
    assert "/search?q=presribing+saftey&amp;spell=0" in html
    html = real_client.get("/search", query_string={"q": "presribing saftey", "spell": "0"}).get_data(as_text=True)
    assert "Did you mean" in html and "Showing results for" not in html


def test_result_links_carry_the_matched_words_to_the_guide(real_client):
    html = real_client.get("/search", query_string={"q": "PSA"}).get_data(as_text=True)
    assert "?h=PSA%20Prescribing%20Safety%20Assessment#what-is-the-psa-and-who-runs-it" in html
