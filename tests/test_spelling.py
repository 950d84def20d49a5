"""kb.engines.spelling: suggestions from an index vocabulary by OSA distance and frequency."""

import pytest

from kb.engines.spelling import Vocabulary, max_distance

TEXTS = [
    "The Prescribing Safety Assessment is a prescribing exam.",
    "Prescribing safety matters on every placement; safety first.",
    "Causes of delay: placement admin causes most of them.",
    "Cases are discussed at the case based discussion. Cases, cases.",
    "Shadowing is paid. The allocation uses preference and a random rank.",
    "Metastases spread.",
    "Metastases are staged.",
    "Good news: the news travels fast. Use the browser tab.",
]


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(TEXTS)


@pytest.mark.parametrize(
    "typo, fixed",
    [
        ("presribing", "prescribing"),  # a missing letter
        ("saftey", "safety"),  # two letters swapped: one edit under OSA
        ("shaddowing", "shadowing"),  # a doubled letter
        ("alocation", "allocation"),
        ("PRESRIBING", "prescribing"),  # case does not matter
        ("matasteses", "metastases"),  # two edits are allowed in long words
        ("casues", "causes"),  # a swap (same length) beats a deletion ("cases") even though "cases" is commoner
    ],
)
def test_suggests_the_intended_word(vocab, typo, fixed):
    assert vocab.suggest(typo) == fixed


@pytest.mark.parametrize("word", ["safety", "Safety", "psa", "zxqv", "blorf", "abc", "r2d2", "placementss" + "x" * 5])
def test_no_suggestion_for_known_short_odd_or_hopeless_words(vocab, word):
    assert vocab.suggest(word) is None


def test_two_edit_candidates_must_be_seen_twice():
    vocab = Vocabulary(["Anticoagulation once.", "Hyperkalaemia here.", "Hyperkalaemia again, in another section."])
    assert vocab.suggest("anticoagulatoin") == "anticoagulation"  # one edit: once is enough
    assert vocab.suggest("antikoagulatoin") is None  # two edits to a word seen once: not sure enough
    assert vocab.suggest("hyperkalemai") == "hyperkalaemia"  # two edits to a word seen in two sections


def test_vocabulary_counts_sections_and_lowercase_use(vocab):
    assert vocab.counts["cases"] == 1 and vocab.counts["prescribing"] == 2
    assert "safety" in vocab and "Safety" in vocab and "nothing" not in vocab
    assert "news" in vocab.lowercase_words and "tab" in vocab.lowercase_words
    assert "prescribing" in vocab.lowercase_words and "Prescribing" not in vocab.lowercase_words


def test_max_distance_grows_with_length():
    assert [max_distance("x" * n) for n in (4, 7, 8, 12)] == [1, 1, 2, 2]
