"""kb.search.sections: the section whose text answers best comes first, whatever its fused rank."""

from __future__ import annotations

from kb.search.sections import COSINE_WEIGHT, Evidence, bonus, order_sections

VOTE = 1 / 61


def test_bonus_weighs_meaning_most_then_words_and_heading():
    assert bonus(Evidence(0.0, 0.0, 0.0)) == 0.0
    assert bonus(Evidence(0.6, 0.0, 0.0)) == COSINE_WEIGHT * 0.6
    # a clearly closer text outweighs a heading that merely shares the query's words
    assert bonus(Evidence(0.70, 0.5, 0.0)) > bonus(Evidence(0.50, 0.5, 0.4))
    # at the same closeness, the section holding more of the query and a matching heading wins
    assert bonus(Evidence(0.5, 1.0, 0.4)) > bonus(Evidence(0.5, 0.5, 0.4)) > bonus(Evidence(0.5, 0.5, 0.0))


def test_a_section_whose_text_answers_overtakes_a_slightly_better_ranked_one():
    fused = [("g#heading-shares-words", 2.3 * VOTE), ("g#text-answers", 2.2 * VOTE), ("h#other", 1.0 * VOTE)]
    evidence = {
        "g#heading-shares-words": Evidence(0.54, 0.75, 0.2),
        "g#text-answers": Evidence(0.70, 0.75, 0.2),
        "h#other": Evidence(0.30, 0.25, 0.0),
    }
    ordered = order_sections(fused, evidence, VOTE)
    assert [cid for cid, _ in ordered] == ["g#text-answers", "g#heading-shares-words", "h#other"]
    assert ordered[0][1] == 2.2 * VOTE + VOTE * bonus(evidence["g#text-answers"])


def test_a_far_better_ranked_section_keeps_its_place_and_ids_without_evidence_keep_their_score():
    fused = [("a", 3.0 * VOTE), ("b", 1.0 * VOTE), ("c", 0.5 * VOTE)]
    ordered = order_sections(fused, {"a": Evidence(0.4, 0.5, 0.0), "b": Evidence(0.6, 0.5, 0.0)}, VOTE)
    assert [cid for cid, _ in ordered] == ["a", "b", "c"] and ordered[2] == ("c", 0.5 * VOTE)
    # equal scores keep their order
    same = order_sections([("x", VOTE), ("y", VOTE)], {}, VOTE)
    assert same == [("x", VOTE), ("y", VOTE)]
