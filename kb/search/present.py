"""Present: hits with snippets, grouped by guide, and the answer card, as one SearchResponse."""

from __future__ import annotations

import bisect
import functools
import html
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kb.content.chunking import Chunk
from kb.engines.keyword_index import analyse, stem
from kb.search.answer import Answer, Coverage, assess, one_line
from kb.search.fuse import WEAK_SEMANTIC
from kb.search.plan import QueryPlan
from kb.search.request import SearchRequest
from kb.search.retrieve import Candidates

if TYPE_CHECKING:
    from kb.search.pipeline import Generation


@dataclass(frozen=True)
class Hit:
    id: str
    slug: str
    title: str
    category: str
    heading: str
    anchor: str
    url: str
    snippet: str
    score: float
    keyword_rank: int | None
    semantic_rank: int | None
    semantic_score: float | None
    weak: bool = False

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "category": self.category,
            "heading": self.heading,
            "anchor": self.anchor,
            "url": self.url,
            "snippet": self.snippet,
            "score": round(self.score, 6),
            "keyword_rank": self.keyword_rank,
            "semantic_rank": self.semantic_rank,
            "semantic_score": None if self.semantic_score is None else round(self.semantic_score, 4),
            "weak": self.weak,
        }


@dataclass(frozen=True)
class GuideGroup:
    slug: str
    title: str
    category: str
    url: str
    hits: tuple[Hit, ...]

    def as_dict(self) -> dict:
        return {
            "slug": self.slug,
            "title": self.title,
            "category": self.category,
            "url": self.url,
            "sections": [h.as_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class SearchResponse:
    query: str
    mode: str
    hits: tuple[Hit, ...]
    groups: tuple[GuideGroup, ...]
    generation: str
    took_ms: float
    confident: bool
    did_you_mean: str | None = None
    corrected: bool = False
    expansions: tuple[str, ...] = ()
    filters: dict = field(default_factory=dict)
    highlight: tuple[str, ...] = ()
    coverage: Coverage | None = None
    answer: Answer | None = None

    def as_dict(self) -> dict:
        return {
            "ok": True,
            "query": self.query,
            "mode": self.mode,
            "filters": self.filters,
            "total": len(self.hits),
            "confident": self.confident,
            "coverage": self.coverage.verdict if self.coverage else None,
            "coverage_detail": self.coverage.as_dict() if self.coverage else None,
            "answer": self.answer.as_dict() if self.answer else None,
            "did_you_mean": self.did_you_mean,
            "corrected": self.corrected,
            "expansions": list(self.expansions),
            "highlight": list(self.highlight),
            "generation": self.generation,
            "took_ms": round(self.took_ms, 2),
            "hits": [h.as_dict() for h in self.hits],
            "groups": [g.as_dict() for g in self.groups],
        }


def group_hits(hits: Sequence[Hit], per_guide: int = 3, limit: int | None = None) -> tuple[GuideGroup, ...]:
    """Group hits by guide in order of each guide's best hit, keeping up to `per_guide` sections."""
    groups: dict[str, list[Hit]] = {}
    for h in hits:
        bucket = groups.setdefault(h.slug, [])
        if len(bucket) < per_guide and all(b.anchor != h.anchor for b in bucket):
            bucket.append(h)
    out = tuple(GuideGroup(s, hs[0].title, hs[0].category, f"/guides/{s}", tuple(hs)) for s, hs in groups.items())
    return out[:limit] if limit else out


@functools.lru_cache(maxsize=4096)
def _word_positions(text: str) -> dict[str | None, tuple[tuple[int, int], ...]]:
    """stem -> (start, end) of each word of a chunk's text with that stem; chunks recur across searches, so cached."""
    out: dict[str | None, list[tuple[int, int]]] = {}
    for m in re.finditer(r"\w+", text):
        out.setdefault(stem(m.group(0)), []).append((m.start(), m.end()))
    return {k: tuple(v) for k, v in out.items()}


def make_snippet(text: str, terms: Sequence[str], width: int = 220) -> str:
    """An HTML-escaped window of `text` around the densest query terms, terms in <mark>."""
    positions = _word_positions(text)
    if not positions:
        return html.escape(text[:width])
    matched = sorted(p for t in {t for t in terms if t} for p in positions.get(t, ()))
    start = 0
    if matched:
        # the window of `width` characters starting at a matched word that holds the most matched words
        starts = [a for a, _ in matched]
        best, best_count = starts[0], 0
        for i, a in enumerate(starts):
            count = bisect.bisect_left(starts, a + width, i) - i
            if count > best_count:
                best, best_count = a, count
        start = max(0, best - width // 4)
        space = text.rfind(" ", 0, start)
        start = space + 1 if start and space >= 0 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    out, pos = [], start
    for a, b in matched:
        if a < start or b > end:
            continue
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:end]))
    snippet = one_line("".join(out))
    return ("… " if start > 0 else "") + snippet + (" …" if end < len(text) else "")


def present(
    gen: Generation,
    request: SearchRequest,
    qp: QueryPlan,
    found: Candidates,
    ranked: Sequence[tuple[str, float]],
    started: float,
) -> SearchResponse:
    """The response: the top sections with snippets, grouped by guide, and the answer card for the top hit."""
    hits = make_hits(gen, request.limit, qp, found, ranked)
    groups = group_hits(hits, per_guide=3, limit=request.limit)
    coverage, answer = assess(card_candidates(gen, groups, found), qp.wanted, qp.highlight)
    return SearchResponse(
        query=request.query,
        mode=request.mode,
        hits=tuple(hits[: request.limit]),
        groups=groups,
        generation=gen.name,
        took_ms=(time.perf_counter() - started) * 1000,
        confident=bool(found.keyword) or any(not h.weak for h in hits),
        did_you_mean=qp.did_you_mean,
        corrected=qp.corrected,
        expansions=qp.expansions,
        filters=request.filters,
        highlight=qp.highlight,
        coverage=coverage,
        answer=answer,
    )


def card_candidates(
    gen: Generation, groups: Sequence[GuideGroup], found: Candidates
) -> list[tuple[Chunk, float | None]]:
    """What the coverage verdict and answer card weigh: the top hit (the first section of the first guide) and its
    exact cosine with the query (None without a query vector, in keyword mode).

    Only the top hit: the sections that become hits are already ranked by their cosine, the share of the
    query they hold and their heading (kb/search/sections.py), so a runner-up guide that blends higher was
    mostly a generic match. Weighing the first section of each of the top three guides, 21 of 315 labelled
    questions got their card from a runner-up, 1 of the 7 with an answer phrase rightly, and 3 of the 9
    unanswerable questions given a card got it from one.
    """
    if not groups:
        return []
    top = gen.by_id[groups[0].hits[0].id]
    cosine = dict(found.semantic).get(top.id)
    if cosine is None and found.vector is not None:
        cosine = gen.cosine(top.id, found.vector)  # a keyword-only hit: its own cosine
    return [(top, cosine)]


def make_hits(
    gen: Generation, limit: int, qp: QueryPlan, found: Candidates, ranked: Sequence[tuple[str, float]]
) -> list[Hit]:
    """A hit with a snippet for each of the top ranked sections (three times `limit`, for grouping)."""
    stems = [t for w in qp.highlight for t in analyse(w)]
    kw_rank = {cid: i for i, cid in enumerate(found.keyword, 1)}
    sem_rank = {cid: i for i, cid in enumerate(found.semantic_ids, 1)}
    sem_score = dict(found.semantic)
    hits: list[Hit] = []
    for cid, score in ranked[: max(limit * 3, limit)]:
        c = gen.by_id.get(cid)
        if c is None:
            continue
        hits.append(
            Hit(
                cid,
                c.slug,
                c.title,
                c.category,
                c.heading or "Overview",
                c.anchor,
                c.url,
                make_snippet(c.text, stems),
                score,
                kw_rank.get(cid),
                sem_rank.get(cid),
                sem_score.get(cid),
                cid not in kw_rank and sem_score.get(cid, 1.0) < WEAK_SEMANTIC,
            )
        )
    return hits
