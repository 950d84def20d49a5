"""Fuse: one ranking from the engines' candidates (RRF), the heading boost, then section choice by the text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from kb.content.chunking import Chunk
from kb.engines.keyword_index import analyse
from kb.search.answer import lexical_coverage, section_stems
from kb.search.plan import QueryPlan
from kb.search.request import SearchRequest
from kb.search.retrieve import POOL, Candidates
from kb.search.sections import Evidence, order_sections

if TYPE_CHECKING:
    from kb.search.pipeline import Generation

RRF_K = 60
# Below this cosine similarity a semantic-only hit is a guess, not an answer.
WEAK_SEMANTIC = 0.30
HEADING_WEIGHT = 1.0 / (RRF_K + 1)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(d) = sum_i w_i / (k + rank_i(d)), ranks starting at 1.

    Pure function; ties keep the order in which ids were first seen.

    Args:
        rankings: One ranked list of ids per retriever, best first.
        k: Damping constant (60 in the original paper).
        weights: Optional weight per retriever (default 1 each).

    Returns:
        [(id, fused score)] best first.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(ranking, 1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
    order = {doc: i for i, doc in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def fuse(mode: str, found: Candidates) -> list[tuple[str, float]]:
    """One ranking [(id, score)] best first from the candidates of the engines `mode` used."""
    if mode == "keyword":
        return [(cid, 1.0 / (RRF_K + i)) for i, cid in enumerate(found.keyword, 1)]
    if mode == "semantic":
        return list(found.semantic)
    # Weak semantic neighbours must not bury a clear keyword hit: only confident
    # semantic hits take part in fusion at full weight.
    keyword_set = set(found.keyword)
    strong = [cid for cid, score in found.semantic if score >= WEAK_SEMANTIC or cid in keyword_set]
    fused = reciprocal_rank_fusion([list(found.keyword), strong], weights=[1.0, 1.0])
    fused_ids = {cid for cid, _ in fused}
    weak = [cid for cid in found.semantic_ids if cid not in fused_ids]
    return fused + [(cid, 0.1 / (RRF_K + POOL + i)) for i, cid in enumerate(weak, 1)]


def heading_match(gen: Generation, qp: QueryPlan) -> Callable[[Chunk], float] | None:
    """How clearly a section's heading says what the query says: F1 squared of their units, 0 to 1.

    The heading and the query are compared as sets of units (content words, glossary concepts
    whichever name is used, quoted phrases): recall is the share of the query the heading covers,
    precision the share of the heading the query covers, so a clear match counts and a heading
    sharing a word with a long question barely does. A guide's introduction scores 0. None when
    the query has nothing to compare.
    """
    wanted: list[tuple[frozenset[str], str | None, bool]] = [(frozenset(analyse(p)), None, False) for p in qp.phrases]
    for u in qp.units:
        stems = frozenset(analyse(u.text))
        if stems or u.term is not None:
            wanted.append((stems, u.term.term if u.term is not None else None, u.function_word))
    if not wanted:
        return None

    def match(c: Chunk) -> float:
        if not c.anchor:
            return 0.0
        stems, concepts, size = gen.heading_terms(c)
        covered = [
            fw
            for ustems, concept, fw in wanted
            if (concept is not None and concept in concepts) or (ustems and ustems <= stems)
        ]
        recall = len(covered) / len(wanted)
        precision = min(1.0, sum(not fw for fw in covered) / size) if size else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return f1 * f1

    return match


def heading_boost(
    gen: Generation, fused: list[tuple[str, float]], match: Callable[[Chunk], float] | None
) -> list[tuple[str, float]]:
    """Rank a section whose heading clearly answers the query first: up to one extra rank-1 vote.

    Guide headings are written as the questions their sections answer, so a heading that says
    what the query says is strong evidence for that section: "What is the PSA and who runs it?"
    beats "What support is there if I've failed the PSA?" for "PSA" (see heading_match).

    A guide's introduction gets no bonus: its title already is its heading in keyword scoring
    and is part of every section's embedding; favouring it again would pull readers to the top
    of a guide instead of to the section that answers. `match` is heading_match's for the query.
    """
    if match is None:
        return fused
    out = [(cid, score + HEADING_WEIGHT * match(gen.by_id[cid])) for cid, score in fused if cid in gen.by_id]
    return sorted(out, key=lambda kv: -kv[1])


def by_evidence(
    gen: Generation,
    fused: list[tuple[str, float]],
    qp: QueryPlan,
    vector: np.ndarray,
    top: int,
    match: Callable[[Chunk], float] | None,
) -> list[tuple[str, float]]:
    """The `top` sections that become hits, re-ranked by what their text says (kb/search/sections.py).

    Each gets its exact cosine with the query (keyword-only hits included), the share of the
    query's words and concepts it holds, and its heading match (`match`, heading_match's for the
    query); the rest keep their order.
    """
    evidence = {}
    for cid, _ in fused[:top]:
        c = gen.by_id.get(cid)
        if c is not None:
            heading = match(c) if match is not None else 0.0
            evidence[cid] = Evidence(gen.cosine(cid, vector), lexical_coverage(qp.wanted, section_stems(c)), heading)
    return order_sections(fused[:top], evidence, HEADING_WEIGHT) + fused[top:]


def rank(gen: Generation, found: Candidates, qp: QueryPlan, request: SearchRequest) -> list[tuple[str, float]]:
    """The fused ranking: the heading boost except in semantic mode (there the cosine alone ranks), and in
    hybrid mode the sections that become hits ordered by what their text says."""
    fused = fuse(request.mode, found)
    if request.mode == "semantic" or not fused:
        return fused
    match = heading_match(gen, qp)  # once a query: the boost and the section choice both weigh it
    fused = heading_boost(gen, fused, match)
    if request.mode == "hybrid" and found.vector is not None:
        fused = by_evidence(gen, fused, qp, found.vector, max(request.limit * 3, request.limit), match)
    return fused
