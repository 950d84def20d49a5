"""kb.tools.gaps: unanswered questions grouped when they ask the same thing, ranked by demand, with a way to start
the guide."""

from __future__ import annotations

import numpy as np

from kb.tools.gaps import gap_report, group_questions, scaffold_command, text_key
from tests.fakes import HashEmbedder


def rows(*pairs):
    return [{"query": q, "n": n, "not_covered": n, "related": 0} for q, n in pairs]


def test_the_same_words_in_any_order_are_one_question():
    assert text_key("night shifts survival F1") == text_key("f1 survival night shift")
    gaps = group_questions(
        rows(("night shifts survival f1", 3), ("f1 survival night shift", 2), ("parking at the hospital", 4))
    )
    assert [(g.question, g.asked) for g in gaps] == [("night shifts survival f1", 5), ("parking at the hospital", 4)]
    assert gaps[0].questions == [("night shifts survival f1", 3), ("f1 survival night shift", 2)]


def test_similar_embeddings_merge_into_the_bigger_group():
    vectors = {
        "surviving nights as a new doctor": [1, 0, 0],
        "night shift tips f1": [0.95, 0.31, 0],
        "council tax for students": [0, 0, 1],
    }

    def encode(texts):
        return np.array([vectors[t] for t in texts], dtype=np.float32)

    gaps = group_questions(
        rows(("night shift tips f1", 2), ("surviving nights as a new doctor", 5), ("council tax for students", 3)),
        encode,
        threshold=0.8,
    )
    assert [(g.question, g.asked) for g in gaps] == [
        ("surviving nights as a new doctor", 7),
        ("council tax for students", 3),
    ]
    assert [q for q, _ in gaps[0].questions] == ["surviving nights as a new doctor", "night shift tips f1"]


def test_unrelated_questions_stay_apart_with_a_real_encoder_shape():
    gaps = group_questions(
        rows(("usmle step 1 score", 1), ("council tax exemption", 1)), HashEmbedder().encode, threshold=0.99
    )
    assert len(gaps) == 2


def test_each_gap_gets_its_closest_guide_and_a_ready_command():
    def closest(q):
        return (
            {
                "slug": "rotas-and-pay-basics",
                "title": "Rotas and pay",
                "category": "starting-f1",
                "url": "/guides/rotas-and-pay-basics",
            }
            if "night" in q
            else None
        )

    gaps = gap_report(rows(("night shift survival f1", 4), ("council tax exemption", 1)), None, closest)
    assert gaps[0].closest["slug"] == "rotas-and-pay-basics"
    assert gaps[0].command == "python scripts/new_guide.py 'Night shift survival f1' --category starting-f1"
    assert gaps[1].closest is None and gaps[1].command.endswith("--category peer-support")
    assert (
        scaffold_command("what's the deal with f1 'nights'?", None)
        == "python scripts/new_guide.py 'What'\"'\"'s the deal with f1 '\"'\"'nights'\"'\"'?' --category peer-support"
    )
