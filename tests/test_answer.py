"""kb.search.answer: the passage that answers, the coverage verdict and the deep link, each testable alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kb.engines.keyword_index import analyse
from kb.search.answer import (
    Wanted,
    assess,
    best_passage,
    confidence,
    deep_link,
    lexical_coverage,
    mark,
    one_line,
    passage,
    sentences,
    verdict_for,
)

TEXT = (
    "The PSA is a two-hour online exam. It has 60 items in eight sections, worth 200 marks in total.\n"
    "Most people sit it in final year.\n"
    "- Prescribing: 80 marks\n"
    "- Prescription review: 32 marks"
)


def wanted(*words: str) -> list[Wanted]:
    return [Wanted((frozenset(analyse(w)),)) for w in words]


def chunk(text: str = TEXT, **kw):
    base = {
        "slug": "psa-format",
        "title": "PSA format",
        "anchor": "how-long",
        "heading": "How long is it?",
        "heading_path": ("How long is it?",),
    }
    return SimpleNamespace(text=text, **{**base, **kw})


def test_sentences_split_prose_and_keep_list_items_whole():
    spans = [TEXT[a:b] for a, b in sentences(TEXT)]
    assert spans == [
        "The PSA is a two-hour online exam.",
        "It has 60 items in eight sections, worth 200 marks in total.",
        "Most people sit it in final year.",
        "- Prescribing: 80 marks",
        "- Prescription review: 32 marks",
    ]


def test_best_passage_holds_the_most_of_the_query_and_prefers_the_first_sentences():
    # runs are as long as the limits allow: the opening run holds both words and is the earliest
    a, b, score = best_passage(TEXT, wanted("marks", "sections"))
    assert TEXT[a:b].startswith("The PSA is a two-hour online exam. It has 60 items") and score == 1.0
    assert TEXT[a:b].endswith("Most people sit it in final year.")
    a, b, score = best_passage(TEXT, wanted("review"))
    assert TEXT[a:b] == "Most people sit it in final year.\n- Prescribing: 80 marks\n- Prescription review: 32 marks"
    assert score == 1.0
    a, b, score = best_passage(TEXT, wanted("review"), max_sentences=1)
    assert TEXT[a:b] == "- Prescription review: 32 marks"
    a, b, score = best_passage(TEXT, wanted("exam"))
    assert TEXT[a:b].startswith("The PSA is a two-hour online exam.") and score == 1.0
    a, b, score = best_passage(TEXT, wanted("unrelated"))
    assert score == 0.0 and TEXT[a:b].startswith("The PSA")  # nothing matches: the section's opening


def test_best_passage_never_exceeds_the_length_limit():
    long = " ".join(f"Sentence {i} says something about marks." for i in range(50))
    a, b, _ = best_passage(long, wanted("marks"), max_chars=120)
    assert b - a <= 120


def test_lexical_coverage_counts_a_concept_once_whichever_form_is_used():
    psa = Wanted((frozenset(analyse("PSA")), frozenset(analyse("prescribing safety assessment"))))
    stems = set(analyse("the prescribing safety assessment has 200 marks"))
    assert lexical_coverage([psa, *wanted("marks")], stems) == 1.0
    assert lexical_coverage([psa, *wanted("fees")], stems) == 0.5
    assert lexical_coverage([], stems) == 0.0


def test_mark_escapes_text_and_marks_query_words():
    assert mark("200 <marks> & more", analyse("marks")) == "200 &lt;<mark>marks</mark>&gt; &amp; more"


def test_deep_link_names_the_section_and_the_passage():
    url = deep_link("psa-format", "how-long", "It has 60 items in eight sections, worth 200 marks in total.", ["marks"])
    assert url.startswith("/guides/psa-format?h=marks#how-long:~:text=It%20has%2060%20items%20in%20eight,")
    assert url.endswith(",200%20marks%20in%20total.")  # the first six words and the last four
    assert (
        deep_link("g", "a", "two-hour exam", []) == "/guides/g#a:~:text=two%2Dhour%20exam"
    )  # '-' is escaped in text fragments


@pytest.mark.parametrize(
    "score, verdict",
    [(0.9, "answered"), (0.62, "answered"), (0.61, "related"), (0.42, "related"), (0.41, "not_covered")],
)
def test_verdicts_at_the_thresholds(score, verdict):
    assert verdict_for(score, answered_at=0.62, related_at=0.42) == verdict


def test_confidence_blends_cosine_and_coverage_and_stands_on_coverage_alone_without_a_cosine():
    assert confidence(0.6, 1.0, weight=0.5) == pytest.approx(0.8)
    assert confidence(-0.2, 0.5, weight=0.5) == pytest.approx(0.25)  # a negative cosine counts as 0
    assert confidence(None, 0.75) == 0.75


def test_assess_gives_a_card_only_when_answered_and_takes_the_most_confident_candidate():
    weak, strong = chunk(text="Nothing relevant here.", anchor="other"), chunk()
    cov, card = assess(
        [(weak, 0.2), (strong, 0.7)],
        wanted("marks", "sections"),
        ["marks", "sections"],
        answered_at=0.6,
        related_at=0.3,
    )
    assert cov.verdict == "answered" and cov.lexical == 1.0 and cov.semantic == 0.7
    assert card is not None and card.anchor == "how-long" and "worth 200 marks" in card.text
    assert "<mark>marks</mark>" in card.html and card.url.startswith(
        "/guides/psa-format?h=marks%20sections#how-long:~:text="
    )
    cov, card = assess([(weak, 0.2)], wanted("marks"), [], answered_at=0.6, related_at=0.3)
    assert cov.verdict == "not_covered" and card is None
    cov, card = assess([], wanted("marks"), [])
    assert cov.verdict == "not_covered" and cov.score == 0 and card is None


def test_the_card_reads_as_the_page_does_without_list_bullets():
    text = "It varies:\n- Before the first night: sleep normally.\n  * Between nights: keep it dark.\n- 3 of 4"
    assert one_line(text) == "It varies: Before the first night: sleep normally. Between nights: keep it dark. 3 of 4"
    card = passage(text, wanted("first", "night"))
    assert not card.startswith("-") and " - " not in card and "Before the first night" in card
    # the link's text fragment starts with words the page shows (a bullet is a marker there, not text)
    link = deep_link("nights", "sleep", card, ["night"])
    assert "%2D" not in link.split(":~:text=")[1]
    assert one_line("A range: 5 - 10 days.") == "A range: 5 - 10 days."  # a dash inside a line stays
