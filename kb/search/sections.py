"""Section choice: rank the top sections by what their text says, not by rank and heading alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Weights in rank-1 votes of reciprocal rank fusion, grid-searched on the tuning half of
# tests/relevance/student_queries.yml (experiments/trial.py) for section@1 and nDCG@10, then frozen.
COSINE_WEIGHT = 5.0  # the section's cosine with the query: does its text mean what was asked?
LEXICAL_WEIGHT = 1.0  # share of the query's words and concepts the section contains
HEADING_WEIGHT = 1.5  # heading match (F1 squared, as in the heading boost), on top of that boost


@dataclass(frozen=True)
class Evidence:
    """What a section's own text and heading say about a query."""

    cosine: float
    lexical: float
    heading: float


def bonus(e: Evidence) -> float:
    """A section's evidence in rank-1 votes: semantic closeness dominates, words and heading break ties."""
    return COSINE_WEIGHT * e.cosine + LEXICAL_WEIGHT * e.lexical + HEADING_WEIGHT * e.heading


def order_sections(
    scored: Sequence[tuple[str, float]], evidence: Mapping[str, Evidence], vote: float
) -> list[tuple[str, float]]:
    """`scored` (id, fused score) re-ranked by fused score + `vote` * bonus, best first.

    Guides are shown in the order of their best section and each guide's sections in this order, so
    the first section shown under a guide is the one whose text answers best. An id without evidence
    keeps its score; ties keep their order.
    """
    rescored = [(cid, s + vote * bonus(evidence[cid]) if cid in evidence else s) for cid, s in scored]
    return sorted(rescored, key=lambda kv: -kv[1])
