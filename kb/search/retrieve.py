"""Retrieve: keyword and semantic candidates for a plan, both held to the request's filters in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kb.content.chunking import Chunk
from kb.engines.keyword_index import KeywordQuery
from kb.errors import IndexMismatchError
from kb.search.plan import QueryPlan
from kb.search.request import SearchRequest

if TYPE_CHECKING:
    from kb.search.pipeline import Generation

POOL = 50
# Filtered semantic search reads every section's score up to this many sections, else a wider pool.
EXHAUSTIVE_UP_TO = 20000


@dataclass(frozen=True)
class Filters:
    """The sections a request may return: of one category, with one tag, or both."""

    category: str | None = None
    tag: str | None = None

    def __bool__(self) -> bool:
        return bool(self.category or self.tag)

    def admits(self, chunk: Chunk | None) -> bool:
        if chunk is None:
            return False
        return (not self.category or chunk.category == self.category) and (not self.tag or self.tag in chunk.tags)


@dataclass(frozen=True)
class Candidates:
    """What the engines found, best first: keyword ids, semantic (id, cosine) pairs and the query's vector."""

    keyword: tuple[str, ...] = ()
    semantic: tuple[tuple[str, float], ...] = ()
    vector: np.ndarray | None = field(default=None, compare=False)

    @property
    def semantic_ids(self) -> list[str]:
        return [cid for cid, _ in self.semantic]


def retrieve(gen: Generation, qp: QueryPlan, request: SearchRequest, embedder) -> Candidates:
    """The candidates of the engines the request's mode asks for, each at most a pool long."""
    filters = Filters(request.category, request.tag)
    pool = max(POOL, request.limit * 3)
    keyword: list[str] = []
    semantic: list[tuple[str, float]] = []
    vector = None
    if request.mode in ("hybrid", "keyword"):
        keyword = keyword_candidates(gen, qp, filters, pool)
    if request.mode in ("hybrid", "semantic"):
        vector = query_vector(qp, embedder)
        semantic = semantic_candidates(gen, qp, vector, filters, pool)
    return Candidates(tuple(keyword), tuple(semantic), vector)


def keyword_candidates(gen: Generation, qp: QueryPlan, filters: Filters, pool: int) -> list[str]:
    """Sections by BM25F: loose words score, glossary concepts score by their best form, phrases are required."""
    kq = KeywordQuery(
        should=tuple((u.text, 1.0) for u in qp.scoring if u.term is None),
        phrases=qp.phrases,
        concepts=tuple(u.forms for u in qp.scoring if u.term is not None),
    )
    if not filters:
        return [cid for cid, _ in gen.keyword.search(kq, limit=pool)]
    # BM25F scores do not depend on a filter: the best `pool` admitted of every match, in the engine's order
    ranked = gen.keyword.search(kq, limit=len(gen.chunks))
    return [cid for cid, _ in ranked if filters.admits(gen.by_id.get(cid))][:pool]


def query_vector(qp: QueryPlan, embedder) -> np.ndarray:
    """The query's meaning as the encoder sees it: quoted phrases and every unit, acronyms spelled out."""
    if embedder is None:
        raise IndexMismatchError("semantic search needs an embedding model; none is configured")
    text = " ".join((*qp.phrases, *(u.semantic_text for u in qp.units)))
    encode_query = getattr(embedder, "encode_query", None)
    return np.asarray(encode_query(text) if encode_query else embedder.encode([text])[0], dtype=np.float32)


def semantic_candidates(
    gen: Generation, qp: QueryPlan, vector: np.ndarray, filters: Filters, pool: int
) -> list[tuple[str, float]]:
    """Sections nearest the query's vector that pass the filters and hold every quoted phrase."""
    filtered = bool(filters or qp.phrases)
    k = len(gen.chunks) if filtered and len(gen.chunks) <= EXHAUSTIVE_UP_TO else pool * (8 if filtered else 1)
    out: list[tuple[str, float]] = []
    phrase_res = [re.compile(r"\b" + r"\s+".join(map(re.escape, p.split())) + r"\b", re.I) for p in qp.phrases]
    for row, score in gen.vectors.search(vector, k):
        c = gen.chunks[row]
        if filters and not filters.admits(c):
            continue
        if phrase_res and not all(r.search(f"{c.title}\n{' '.join(c.heading_path)}\n{c.text}") for r in phrase_res):
            continue
        out.append((c.id, score))
        if len(out) >= pool:
            break
    return out
