"""kb.engines.keyword_index: the numpy BM25F scorer returns exactly what whoosh's own matchers return."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from whoosh import query as Q

from kb.content.chunking import chunk_guide
from kb.content.guide import load_guides
from kb.content.render import render_markdown
from kb.engines import keyword_index
from kb.engines.keyword_index import POSTINGS_FILE, KeywordIndex, KeywordQuery, PostingsScorer, analyse
from tests.conftest import content_today

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def chunks():
    guides, _ = load_guides(ROOT / "content", content_today())
    out = []
    for g in guides:
        out.extend(chunk_guide(g, render_markdown(g.body)))
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory, chunks) -> KeywordIndex:
    path = tmp_path_factory.mktemp("kw") / "whoosh"
    keyword_index.build(path, chunks)
    return KeywordIndex(path)


def whoosh_top(ki: KeywordIndex, q, limit: int) -> list[tuple[str, float]]:
    """The reference: every match whoosh finds, in whoosh's order (score, then document number)."""
    return [(h["id"], h.score) for h in ki._searcher().search(q, limit=None)][:limit]


def assert_same(got, want):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)


def vocabulary(chunks, n: int, seed: int) -> list[str]:
    words = sorted({w for c in chunks[:120] for w in c.text.lower().split() if w.isalpha()})
    return random.Random(seed).sample(words, n)


def test_build_writes_postings(index):
    assert (index.path / POSTINGS_FILE).is_file()
    assert index._postings is not None and index._postings.n == index.doc_count()


@pytest.mark.parametrize("seed", range(6))
def test_keyword_queries_score_as_whoosh_does(index, chunks, seed):
    rng = random.Random(seed)
    words = vocabulary(chunks, 40, seed)
    for _ in range(25):
        should = tuple((w, rng.choice([1.0, 0.8])) for w in rng.sample(words, rng.randint(1, 6)))
        should += (("prescribing safety assessment", 0.6), ("foundation programme", 0.6))[: rng.randint(0, 2)]
        phrases = tuple(rng.sample(["the psa", "foundation school", "ward round", "on call", "bnf"], rng.randint(0, 1)))
        kq = KeywordQuery(should, phrases)
        q = index._build(kq)
        if q is None:
            continue
        assert_same(index.search(kq, limit=20), whoosh_top(index, q, 20))


NODES = [
    Q.Term("body", "psa"),
    Q.Term("title", "psa", boost=3.0),
    Q.Or([Q.Term("body", "bnf"), Q.Term("heading", "bnf", boost=2.0), Q.Term("body", "nosuchword")], boost=0.5),
    Q.Or([Q.Term("body", "bnf")], boost=7.0),  # one clause: whoosh ignores the compound's boost
    Q.And([Q.Term("body", "foundat"), Q.Term("body", "school")], boost=1.5),
    Q.AndMaybe(Q.Term("body", "exam"), Q.Or([Q.Term("body", "calcul"), Q.Term("title", "psa")])),
    Q.Phrase("body", ["ward", "round"]),
    Q.Phrase("heading", ["the", "psa"], boost=0.3),
    Q.Phrase("body", ["psa", "psa"]),
    Q.Phrase("body", ["nosuchword", "psa"]),
    Q.Or([Q.Prefix("body", "presc"), Q.Term("body", "bnf")]),  # a node the scorer hands to whoosh
    Q.NullQuery,
]


@pytest.mark.parametrize("q", NODES, ids=[str(n)[:60] for n in NODES])
def test_query_nodes_score_as_whoosh_does(index, q):
    assert_same(index._postings.search(q, index._searcher(), 30), whoosh_top(index, q, 30))


def test_disjunction_max_takes_each_documents_best_clause(index):
    """DisMax as whoosh documents it: a document scores the best of the clauses it matches, times the boost.

    (whoosh 2.7's own DisjunctionMaxMatcher.score can return the score another clause has for the
    next document it matches, so whoosh's results are not the reference here.)
    """
    subs = [
        Q.Term("body", "psa"),
        Q.Phrase("body", ["prescrib", "safeti", "assess"], boost=0.4),
        Q.Term("title", "bnf", boost=3.0),
    ]
    s = index._searcher()
    best: dict[int, float] = {}
    for sub in subs:
        for score, docnum in s.search(sub, limit=None).top_n:
            best[docnum] = max(best.get(docnum, float("-inf")), score)
    want = sorted(((index._postings.ids[d], 2.0 * sc, d) for d, sc in best.items()), key=lambda x: (-x[1], x[2]))[:40]
    got = index._postings.search(Q.DisjunctionMax(subs, boost=2.0), s, 40)
    assert_same(got, [(i, sc) for i, sc, _ in want])


def test_incremental_update_with_deletions(tmp_path, index, chunks):
    path = tmp_path / "whoosh"
    shutil.copytree(index.path, path)
    changed = {chunks[0].slug, chunks[-1].slug}
    keyword_index.update(path, changed, [c for c in chunks if c.slug == chunks[0].slug])  # the last guide is removed
    ki = KeywordIndex(path)
    assert ki._postings is not None and ki.doc_count() == sum(c.slug != chunks[-1].slug for c in chunks)
    for words in (["psa", "exam"], ["foundation", "school", "preferences"], analyse(chunks[-1].title) or ["guide"]):
        kq = KeywordQuery(tuple((w, 1.0) for w in words))
        assert_same(ki.search(kq, limit=25), whoosh_top(ki, ki._build(kq), 25))
    assert not any(
        cid.startswith(chunks[-1].slug + "#")
        for cid, _ in ki.search(KeywordQuery(tuple((w, 1.0) for w in analyse(chunks[-1].title))), 50)
    )


def test_without_postings_whoosh_answers(tmp_path, index):
    path = tmp_path / "whoosh"
    shutil.copytree(index.path, path)
    (path / POSTINGS_FILE).unlink()
    old = KeywordIndex(path)
    assert old._postings is None
    kq = KeywordQuery((("bnf", 1.0), ("psa", 1.0)))
    assert [i for i, _ in old.search(kq, 10)] == [i for i, _ in index.search(kq, 10)]


def test_scorer_reads_ids_and_fields(index):
    scorer = PostingsScorer(index.path / POSTINGS_FILE)
    assert set(scorer.fields) == {"title", "heading", "body"}
    assert all(scorer.ids) and len(set(scorer.ids)) == scorer.n
