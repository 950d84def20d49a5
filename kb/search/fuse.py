"""Fuse: one ranking from the engines' candidates (reciprocal rank fusion), then the heading boost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kb.engines.keyword_index import analyse
from kb.search.plan import QueryPlan
from kb.search.retrieve import POOL, Candidates

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


def heading_boost(gen: Generation, fused: list[tuple[str, float]], qp: QueryPlan) -> list[tuple[str, float]]:
    """Rank a section whose heading clearly answers the query first.

    Guide headings are written as the questions their sections answer, so a heading that says
    what the query says is strong evidence for that section. The heading and the query are
    compared as sets of units (content words, glossary concepts whichever name is used, quoted
    phrases): recall is the share of the query the heading covers, precision the share of the
    heading the query covers. The bonus is their F1 squared, up to one extra rank-1 vote, so a
    clear match counts and a heading sharing a word with a long question barely does: "What is
    the PSA and who runs it?" beats "What support is there if I've failed the PSA?" for "PSA".

    A guide's introduction gets no bonus: its title already is its heading in keyword scoring
    and is part of every section's embedding; favouring it again would pull readers to the top
    of a guide instead of to the section that answers.
    """
    wanted: list[tuple[frozenset[str], str | None, bool]] = [(frozenset(analyse(p)), None, False) for p in qp.phrases]
    for u in qp.units:
        stems = frozenset(analyse(u.text))
        if stems or u.term is not None:
            wanted.append((stems, u.term.term if u.term is not None else None, u.function_word))
    if not wanted:
        return fused
    out = []
    for cid, score in fused:
        c = gen.by_id.get(cid)
        if c is None:
            continue
        if not c.anchor:
            out.append((cid, score))
            continue
        stems, concepts, size = gen.heading_terms(c)
        covered = [
            fw
            for ustems, concept, fw in wanted
            if (concept is not None and concept in concepts) or (ustems and ustems <= stems)
        ]
        recall = len(covered) / len(wanted)
        precision = min(1.0, sum(not fw for fw in covered) / size) if size else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append((cid, score + HEADING_WEIGHT * f1 * f1))
    return sorted(out, key=lambda kv: -kv[1])


def rank(gen: Generation, mode: str, found: Candidates, qp: QueryPlan) -> list[tuple[str, float]]:
    """The fused ranking, with the heading boost except in semantic mode (there the cosine alone ranks)."""
    fused = fuse(mode, found)
    if mode != "semantic" and fused:
        fused = heading_boost(gen, fused, qp)
    return fused
