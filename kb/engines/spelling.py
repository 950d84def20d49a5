"""Spelling suggestions from the index's own vocabulary (Damerau/OSA distance, then word frequency)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_LENGTH = 4  # shorter words have too many neighbours one edit away to guess safely


def section_text(title: str, heading_path, text: str) -> str:
    """The words of one section that spelling suggestions draw on: its guide title, headings and text."""
    return f"{title}\n{' '.join(heading_path)}\n{text}"


def max_distance(word: str) -> int:
    """Edits allowed for a word of this length: 1 up to seven letters, 2 from eight."""
    return 1 if len(word) <= 7 else 2


class Vocabulary:
    """Lowercased words of the indexed text with the number of sections each appears in.

    Also remembers which words appear in lowercase in running text, so that an acronym typed in
    lowercase ("news") can be told apart from an ordinary word.
    """

    def __init__(
        self, texts: Iterable[str] = (), *, counts: dict[str, int] | None = None, lowercase: Iterable[str] = ()
    ):
        """Count the words of `texts`, or take ready `counts` and `lowercase` words (as `as_dict` wrote them)."""
        if counts is None:
            counted: Counter[str] = Counter()
            lower: set[str] = set()
            for text in texts:
                words = WORD_RE.findall(text)
                counted.update({w.casefold() for w in words if len(w) >= 2})
                lower.update(w for w in words if w.islower())
            counts, lowercase = dict(counted), lower
        self.counts: dict[str, int] = counts
        self.lowercase_words = frozenset(lowercase)
        self._choices = [w for w in self.counts if len(w) >= MIN_LENGTH - 1]

    def as_dict(self) -> dict:
        """What a build stores (`vocabulary.json`), so a server never has to count a large index's words."""
        return {"counts": self.counts, "lowercase": sorted(self.lowercase_words)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        counts = data["counts"]
        if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in counts.items()
        ):
            raise ValueError("vocabulary counts must map words to integers")
        return cls(counts=counts, lowercase=[str(w) for w in data.get("lowercase", [])])

    def __contains__(self, word: str) -> bool:
        return word.casefold() in self.counts

    def suggest(self, word: str) -> str | None:
        """The most likely intended vocabulary word for an unknown `word`, or None when unsure.

        Candidates are the vocabulary words within `max_distance` edits (optimal string alignment:
        insertions, deletions, substitutions and swaps of neighbouring letters). The nearest win;
        among equally near ones, a candidate keeping the first letter (typos rarely hit it) and then
        the one of the same length (swapped or mistyped letters are the commonest typos), then the
        one in most sections. A candidate two edits away must appear in at least two sections.
        """
        w = word.casefold()
        if len(w) < MIN_LENGTH or not w.isalpha() or w in self.counts:
            return None
        limit = max_distance(w)
        found = process.extract(w, self._choices, scorer=OSA.distance, score_cutoff=limit, limit=None)
        best: tuple[tuple[int, bool, bool, int, str], str] | None = None
        for candidate, distance, _ in found:
            count = self.counts[candidate]
            if distance == 0 or (distance > 1 and count < 2):
                continue
            key = (int(distance), candidate[0] != w[0], len(candidate) != len(w), -count, candidate)
            if best is None or key < best[0]:
                best = (key, candidate)
        return best[1] if best else None
