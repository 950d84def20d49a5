"""Answer cards and coverage verdicts: the passage of a guide that answers a query, and whether any guide does."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from kb.engines.keyword_index import analyse, stem

VERDICTS = ("answered", "related", "not_covered")

# Tuned once on the tuning half of the labelled sets (tests/relevance/), then frozen; the test half
# was measured with these values (docs/BENCHMARKS.md, "Answers and coverage").
# Grid search on the tuning half (benchmarks/calibrate_answers.py): the most cards shown with at least
# 97.5% of unanswerable questions flagged, at most 3% of answerable ones called not covered, and at
# least 30% of unanswerable ones called not covered (not merely related). The margins are there because
# the test half ran below the tuning half (88% flagged with 95% on the tuning half).
ANSWERED_AT = 0.52  # confidence from which the top hit is taken to answer the query
RELATED_AT = 0.34  # below this, nothing in the guides is close: "not covered yet"
SEMANTIC_WEIGHT = 0.8  # confidence = w * cosine of the best section + (1 - w) * share of the query it contains
MAX_SENTENCES = 3
MAX_CHARS = 360

# A list item's bullet at the start of a line of a section's plain text: the page shows it as a list marker, not text
_BULLET = re.compile(r"(?m)^[ \t]*[-*+][ \t]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Wanted:
    """One thing the query asks about, as the stems any of its written forms has (a word has one form)."""

    forms: tuple[frozenset[str], ...]

    def found_in(self, stems: set[str] | frozenset[str]) -> bool:
        return any(f and f <= stems for f in self.forms)


@dataclass(frozen=True)
class Candidate:
    """A section weighed for the verdict: the site weighs its top hit (kb/search/present.py card_candidates)."""

    chunk: object  # has slug, title, anchor, heading, heading_path and text
    cosine: float | None
    lexical: float


@dataclass(frozen=True)
class Coverage:
    """How well the guides cover a query: the verdict and the evidence behind it.

    `candidates` and `wanted` are what the verdict was worked out from, kept so that calibration
    (benchmarks/calibrate_answers.py) re-weighs exactly the site's own evidence; they are not published.
    """

    verdict: str
    score: float
    semantic: float | None
    lexical: float
    candidates: tuple[Candidate, ...] = field(default=(), repr=False, compare=False)
    wanted: tuple[Wanted, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "score": round(self.score, 4),
            "semantic": None if self.semantic is None else round(self.semantic, 4),
            "lexical": round(self.lexical, 4),
        }


@dataclass(frozen=True)
class Answer:
    """One to three sentences of a guide's own text that answer the query, and where they are."""

    text: str
    html: str
    slug: str
    title: str
    anchor: str
    heading: str
    url: str
    score: float

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "html": self.html,
            "slug": self.slug,
            "title": self.title,
            "anchor": self.anchor,
            "heading": self.heading,
            "url": self.url,
            "score": round(self.score, 4),
        }


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a section's plain text; a line without full stops (a list item, a
    table row) is a sentence of its own."""
    out: list[tuple[int, int]] = []
    for para in re.finditer(r"[^\n]+", text):
        start = para.start()
        line = para.group(0)
        for m in _SENTENCE_END.finditer(line):
            end = para.start() + m.start()
            if text[start:end].strip():
                out.append((start, end))
            start = para.start() + m.end()
        if text[start : para.end()].strip():
            out.append((start, para.end()))
    return out


@functools.lru_cache(maxsize=8192)
def _stems(text: str) -> frozenset[str]:
    # sections recur across searches: their stems are worked out once per process
    return frozenset(analyse(text))


def lexical_coverage(wanted: Sequence[Wanted], stems: set[str] | frozenset[str]) -> float:
    """Share of what the query asks about that a text contains (0 when the query asks about nothing)."""
    if not wanted:
        return 0.0
    return sum(w.found_in(stems) for w in wanted) / len(wanted)


def best_passage(
    text: str, wanted: Sequence[Wanted], max_sentences: int = MAX_SENTENCES, max_chars: int = MAX_CHARS
) -> tuple[int, int, float]:
    """The run of up to `max_sentences` sentences that holds the most of the query, as (start, end, coverage).

    Every run is as long as the limits allow (`max_sentences` within `max_chars`): the words a query
    shares with a guide often sit beside the fact that answers it rather than in the same sentence, so a
    full run shows the answer more often than the matching sentence alone (tuning half of the labelled
    set: the card held the expected phrase for 36% of queries with the shortest runs, 43% with full ones).
    Guides answer a heading's question in its first sentence (house style), so ties go to the earlier run.
    """
    spans = sentences(text)
    if not spans:
        return 0, 0, 0.0
    per = [_stems(text[a:b]) for a, b in spans]
    best: tuple[float, int, int] | None = None
    for i in range(len(spans)):
        got = set(per[i])
        j = i + 1
        while j < len(spans) and j - i < max_sentences and spans[j][1] - spans[i][0] <= max_chars:
            got |= per[j]
            j += 1
        score = lexical_coverage(wanted, got)
        if best is None or (score, -i) > (best[0], -best[1]):
            best = (score, i, j)
    assert best is not None
    score, i, j = best
    start, end = spans[i][0], spans[j - 1][1]
    if end - start > max_chars:
        cut = text.rfind(" ", start, start + max_chars)
        end = cut if cut > start else start + max_chars
    return start, end, score


def section_stems(chunk) -> frozenset[str]:
    """Stems of everything a section says: its guide's title, its headings and its text."""
    return _stems(f"{chunk.title}\n{' '.join(chunk.heading_path)}\n{chunk.text}")


def one_line(text: str) -> str:
    """Plain text as the page reads it, on one line: list bullets dropped, whitespace collapsed.

    The card shows it, and its link's text fragment must match the page, where "- " is a list marker.
    """
    return " ".join(_BULLET.sub("", text).split())


def passage(text: str, wanted: Sequence[Wanted]) -> str:
    """The best passage of a section's text for the query, on one line (see best_passage)."""
    a, b, _ = best_passage(text, wanted)
    return one_line(text[a:b])


def mark(text: str, stems: Iterable[str]) -> str:
    """`text` HTML-escaped, with every word whose stem is in `stems` wrapped in <mark>."""
    wanted = set(stems)
    out, pos = [], 0
    for m in re.finditer(r"\w+", text):
        if stem(m.group(0)) in wanted:
            out.append(html.escape(text[pos : m.start()]))
            out.append(f"<mark>{html.escape(m.group(0))}</mark>")
            pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def deep_link(slug: str, anchor: str, passage: str, highlight: Sequence[str]) -> str:
    """A link that opens the guide at the section, with the passage highlighted by the browser (a text
    fragment, no script needed) and the query words by the page's own script (`?h=`)."""
    words = passage.split()
    fragment = ""
    if words:
        start = " ".join(words[:6])
        end = " ".join(words[-4:]) if len(words) > 10 else ""

        def enc(s: str) -> str:
            return quote(s, safe="").replace("-", "%2D")

        fragment = ":~:text=" + enc(start) + ("," + enc(end) if end else "")
    query = f"?h={quote(' '.join(highlight))}" if highlight else ""
    return f"/guides/{slug}{query}#{anchor}{fragment}" if anchor else f"/guides/{slug}{query}#{fragment}"


def verdict_for(score: float, answered_at: float = ANSWERED_AT, related_at: float = RELATED_AT) -> str:
    if score >= answered_at:
        return "answered"
    if score >= related_at:
        return "related"
    return "not_covered"


def confidence(semantic: float | None, lexical: float, weight: float = SEMANTIC_WEIGHT) -> float:
    """One number for "does the best section answer this?": cosine and lexical coverage blended.

    Without a semantic score (keyword mode) the lexical share stands alone.
    """
    if semantic is None:
        return lexical
    return weight * max(0.0, semantic) + (1 - weight) * lexical


def assess(
    candidates: Sequence[tuple[object, float | None]],
    wanted: Sequence[Wanted],
    highlight: Sequence[str],
    *,
    weight: float = SEMANTIC_WEIGHT,
    answered_at: float = ANSWERED_AT,
    related_at: float = RELATED_AT,
) -> tuple[Coverage, Answer | None]:
    """The coverage verdict for a query and, when a section answers it, the answer card.

    Args:
        candidates: (chunk, cosine or None) for each section to weigh, best first (the site passes its
            top hit only); a chunk has slug, title, anchor, heading, heading_path and text.
        wanted: What the query asks about (content words, glossary concepts, phrases).
        highlight: The query words the page highlights (for the card's link).

    The best candidate is the one with the highest confidence; its best passage is the card.
    """
    wanted = tuple(wanted)
    if not candidates:
        return Coverage("not_covered", 0.0, None, 0.0, wanted=wanted), None
    weighed = tuple(Candidate(chunk, cos, lexical_coverage(wanted, section_stems(chunk))) for chunk, cos in candidates)
    best = max(weighed, key=lambda c: confidence(c.cosine, c.lexical, weight))  # max keeps the earliest of equals
    score = confidence(best.cosine, best.lexical, weight)
    cov = Coverage(verdict_for(score, answered_at, related_at), score, best.cosine, best.lexical, weighed, wanted)
    if cov.verdict != "answered":
        return cov, None
    chunk = best.chunk
    text = passage(chunk.text, wanted)
    if not text:
        return cov, None
    stems = {s for w in wanted for f in w.forms for s in f}
    return cov, Answer(
        text=text,
        html=mark(text, stems),
        slug=chunk.slug,
        title=chunk.title,
        anchor=chunk.anchor,
        heading=chunk.heading or "Overview",
        url=deep_link(chunk.slug, chunk.anchor, text, highlight),
        score=score,
    )
