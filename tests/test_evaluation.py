"""kb.tools.evaluation: metrics, the labelled query file, BEIR folders turned into guides (fast, no real model)."""

import json
import math
from pathlib import Path

import pytest

from kb.content.chunking import chunk_guide
from kb.content.guide import load_guides
from kb.content.render import render_markdown
from kb.errors import ContentError
from kb.index.build import build_index
from kb.search.pipeline import Searcher
from kb.tools.evaluation import (
    DEFAULT_QUERIES,
    Judged,
    beir_slug,
    beir_to_content,
    check_judgements,
    evaluate,
    format_table,
    load_beir,
    load_judgements,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    score_query,
)
from tests.conftest import content_today

ROOT = Path(__file__).resolve().parent.parent


# ---- metrics ----------------------------------------------------------------------------------
def test_ndcg_matches_hand_computation():
    # gains 0, 2, 1 against ideal 2, 1: (2/log2(3) + 1/log2(4)) / (2/log2(2) + 1/log2(3))
    expected = (2 / math.log2(3) + 1 / 2) / (2 + 1 / math.log2(3))
    assert ndcg_at_k([0, 2, 1], [1, 2]) == pytest.approx(expected)
    assert ndcg_at_k([2, 1], [2, 1]) == pytest.approx(1.0)
    assert ndcg_at_k([0, 0], [1]) == 0.0
    assert ndcg_at_k([1], []) == 0.0
    assert ndcg_at_k([0] * 10 + [1], [1], k=10) == 0.0  # beyond the cut-off


def test_mrr_and_recall():
    assert mrr_at_k([False, False, True]) == pytest.approx(1 / 3)
    assert mrr_at_k([False] * 10 + [True]) == 0.0
    assert mrr_at_k([]) == 0.0
    assert recall_at_k(["a", "b", "c"], ["c", "d"], 5) == 0.5
    assert recall_at_k(["a", "b", "c"], ["c"], 2) == 0.0
    assert recall_at_k(["a"], [], 5) == 0.0


def test_section_gain_needs_the_answering_section_first():
    j = Judged(
        "q1", "how long is the psa", {"psa": 1, "resits": 1}, {"psa": frozenset({"how-long"}), "resits": frozenset()}
    )
    assert j.gain("psa", "how-long") == 2 and j.gain("psa", "") == 1 and j.gain("other", "how-long") == 0
    assert j.ideal_gains() == [2, 1]
    best = score_query(j, [("psa", "how-long"), ("resits", "")])
    assert best.ndcg == pytest.approx(1.0) and best.rr == 1.0 and best.section_top is True
    wrong_section = score_query(j, [("psa", "intro"), ("resits", "")])
    assert wrong_section.rr == 1.0 and wrong_section.ndcg < 1.0 and wrong_section.section_top is False
    miss = score_query(j, [("x", ""), ("y", "")])
    assert miss.rr == 0.0 and miss.recall5 == 0.0 and miss.ndcg == 0.0


# ---- the labelled set ---------------------------------------------------------------------------
def test_labelled_set_is_large_varied_and_judged_against_real_sections():
    judged = load_judgements(DEFAULT_QUERIES)
    assert len(judged) >= 80
    kinds = {k for j in judged for k in j.kinds}
    assert {"starter", "typo", "acronym", "long", "one-word", "paraphrase", "phrase"} <= kinds
    guides, problems = load_guides(ROOT / "content", content_today())
    assert not [p for p in problems if p.level == "error"]
    chunks = [c for g in guides for c in chunk_guide(g, render_markdown(g.body))]
    assert check_judgements(judged, chunks) == []
    assert sum(bool(j.anchors.get(s)) for j in judged for s in j.grades) >= 100  # most judgements name the section


def test_check_judgements_reports_missing_guides_and_sections():
    guides, _ = load_guides(ROOT / "tests" / "fixtures" / "content")
    chunks = [c for g in guides for c in chunk_guide(g, render_markdown(g.body))]
    judged = [
        Judged(
            "q1", "x", {"psa-resits": 1, "nope": 1}, {"psa-resits": frozenset({"no-such-section"}), "nope": frozenset()}
        )
    ]
    problems = check_judgements(judged, chunks)
    assert any("no guide called 'nope'" in p for p in problems)
    assert any("no section '#no-such-section'" in p for p in problems)


@pytest.mark.parametrize(
    "text, code",
    [
        ("- q: only a query\n", "eval.entry"),
        ("- q: ''\n  relevant: {a: []}\n", "eval.entry"),
        ("- q: same\n  relevant: {a: []}\n- q: Same\n  relevant: {b: []}\n", "eval.duplicate"),
        ("q: not a list\n", "eval.type"),
        ("- q: [unclosed\n", "eval.yaml"),
    ],
)
def test_bad_labelled_files_are_refused(tmp_path, text, code):
    path = tmp_path / "queries.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as info:
        load_judgements(path)
    assert code in {p.code for p in info.value.problems}


# ---- BEIR folders -------------------------------------------------------------------------------
def write_beir(folder: Path) -> Path:
    long_title = "Microstructural development of human newborn cerebral white matter " * 3
    docs = [
        {
            "_id": "101",
            "title": "Vitamin D and bone density in older adults",
            "text": "Vitamin D supplements raised bone mineral density in older adults.",
        },
        {
            "_id": "102",
            "title": long_title,
            "text": "Diffusion tensor imaging measured white matter anisotropy in preterm infants. " * 30,
        },
        {
            "_id": "103",
            "title": "Vitamin D and bone density in older adults",
            "text": "# A duplicate title; this body starts like a heading.",
        },
        {"_id": "104", "title": "Statins and muscle pain", "text": ""},
    ]
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    queries = [
        {"_id": "1", "text": "vitamin D improves bone density"},
        {"_id": "2", "text": "preterm infants white matter anisotropy"},
        {"_id": "3", "text": "unjudged"},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t101\t1\n2\t102\t1\n", encoding="utf-8")
    return folder


def test_beir_folder_becomes_valid_guides_and_is_searchable(tmp_path, fake_embedder):
    beir = load_beir(write_beir(tmp_path / "mini"))
    assert [j.query for j in beir.judged] == [
        "vitamin D improves bone density",
        "preterm infants white matter anisotropy",
    ]
    assert beir.judged[0].grades == {beir_slug("101"): 1} and beir.doc_count == 4
    content = tmp_path / "content"
    assert beir_to_content(beir.corpus_path, content) == 4
    guides, problems = load_guides(content)
    assert [p for p in problems if p.level == "error"] == []
    by_slug = {g.slug: g for g in guides}
    assert len(by_slug) == 4
    cut = by_slug["doc-102"]
    assert len(cut.title) <= 120 and cut.title.endswith("…")
    # the introduction reads as the document does: the full title (as the summary), then the abstract
    original = json.loads((tmp_path / "mini" / "corpus.jsonl").read_text().splitlines()[1])
    assert cut.summary == original["title"].strip() and cut.body.strip() == original["text"].strip()
    assert by_slug["doc-103"].title.endswith("[103]")  # duplicate titles told apart
    assert by_slug["doc-104"].body.strip() == "Statins and muscle pain"  # an empty abstract falls back to the title
    chunks = chunk_guide(cut, render_markdown(cut.body))
    assert len(chunks) > 1 and all(not c.anchor for c in chunks)  # a long abstract is split, no headings invented
    assert not render_markdown(by_slug["doc-103"].body).headings

    index = tmp_path / "index"
    build_index(content, index, fake_embedder)
    scores = evaluate(Searcher(index, fake_embedder), beir.judged, modes=("keyword",))
    summary = scores["keyword"].summary()
    assert summary["mrr@10"] == 1.0 and summary["recall@10"] == 1.0 and summary["queries"] == 2
    assert "keyword" in format_table("mini", scores)


def test_not_a_beir_folder(tmp_path):
    with pytest.raises(ContentError) as info:
        load_beir(tmp_path)
    assert "corpus.jsonl" in info.value.problems[0].message


def test_a_beir_abstract_longer_than_a_guide_line_is_wrapped_not_refused(tmp_path):
    """SciFact has abstracts of over 5,000 characters on one line: the guide line limit must not refuse them."""
    folder = tmp_path / "long"
    folder.mkdir()
    text = "Alpha beta - gamma 12. delta # epsilon > zeta. " * 160  # 7,520 characters; '-', '#', '>' and '12.'
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "9", "title": "Long", "text": text}) + "\n")
    content = tmp_path / "content"
    assert beir_to_content(folder / "corpus.jsonl", content) == 1
    guides, problems = load_guides(content)
    assert problems == [] and len(guides) == 1
    body = guides[0].body
    assert len(body.strip().splitlines()) > 1 and all(len(line) <= 5_000 for line in body.splitlines())
    html = render_markdown(body).html
    assert "<ul" not in html and "<ol" not in html and "<h" not in html and "<blockquote" not in html
    assert " ".join(body.replace("\\", "").split()) == text.strip()  # the same words, only wrapped
