"""Integration: the real packaged all-MiniLM-L6-v2 model, a real index, purposeful queries."""

import numpy as np
import pytest

from kb.engines.embedding import CANONICAL_NAME
from kb.search.pipeline import Searcher
from kb.search.request import SearchRequest

pytestmark = pytest.mark.slow


def test_real_model_loads_offline_from_the_package(real_embedder):
    assert real_embedder.name == CANONICAL_NAME
    v = real_embedder.encode(["prescribing exam", "drug chart exam", "ward round etiquette"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])  # a real model, not a hash


@pytest.fixture(scope="module")
def searcher(fixture_index, real_embedder):
    return Searcher(fixture_index, real_embedder)


@pytest.mark.parametrize(
    "query, expected_id",
    [
        ("how long is the prescribing safety assessment", "psa-exam-format#how-long-is-the-psa-and-how-many-questions"),
        ("do i have to resit if my pass is old", "psa-resits#do-i-need-to-resit-if-i-passed-years-ago"),
        (
            "is the allocation random or based on marks",
            "preference-informed-allocation#is-my-rank-based-on-my-exam-marks",
        ),
        ("how do I get my DOPS signed off", "ward-round-basics#how-do-i-get-my-dops-signed-off"),
        ("where do question banks come from", "study-groups#where-do-question-banks-come-from"),
    ],
)
def test_hybrid_top_hit(searcher, query, expected_id):
    assert searcher.search(SearchRequest(query, limit=5)).hits[0].id == expected_id


def test_semantic_finds_paraphrase_without_shared_words(searcher):
    hits = searcher.search(
        SearchRequest("standing beside the consultant while they see patients", mode="semantic", limit=3)
    ).hits
    assert hits[0].slug == "ward-round-basics"


def test_acronym_and_expansion_meet(searcher):
    short = searcher.search(SearchRequest("PSA", limit=3))
    long = searcher.search(SearchRequest("prescribing safety assessment", limit=3))
    assert "Prescribing Safety Assessment" in short.expansions and "PSA" in long.expansions
    assert short.hits[0].slug.startswith("psa") and long.hits[0].slug.startswith("psa")


def test_filters_and_phrases(searcher):
    res = searcher.search(SearchRequest('"random rank"', category="applications"))
    assert res.hits and all(h.category == "applications" for h in res.hits)
    assert searcher.search(SearchRequest('"random rank"', category="psa")).hits == ()
    assert all(h.slug == "psa-resits" for h in searcher.search(SearchRequest("resit", tag="resits")).hits)


def test_nonsense_query_is_not_confident(searcher):
    res = searcher.search(SearchRequest("zxqv blorf", limit=3))
    assert res.confident is False and all(h.weak for h in res.hits)


def test_typo_gives_did_you_mean(searcher):
    res = searcher.search(SearchRequest("prescribng", limit=3))
    assert res.did_you_mean == "prescribing"
    assert res.hits[0].slug == "psa-exam-format"
