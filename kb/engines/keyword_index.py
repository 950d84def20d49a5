"""The only module that imports whoosh: BM25F keyword index over chunks, with phrases and glossary concepts."""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from whoosh import index as windex
from whoosh import query as Q
from whoosh import scoring
from whoosh.analysis import StemmingAnalyzer
from whoosh.codec import whoosh3
from whoosh.fields import ID, KEYWORD, TEXT, Schema
from whoosh.query.qcore import _NullQuery

log = logging.getLogger(__name__)

ANALYZER = StemmingAnalyzer(minsize=1)
FIELD_BOOSTS = {"title": 1.0, "heading": 1.0, "body": 1.0}
BM25_B, BM25_K1 = 0.75, 1.2
SCORED_FIELDS = ("title", "heading", "body")  # exported for PostingsScorer
# Words score in a section's heading path and text; a guide's introduction is scored by its
# summary and text. The guide title is not scored word by word: indexed with every section it
# lifted all sections of a guide alike and drowned their own text, and it is part of every
# section's embedding already. Quoted phrases may still match a title.
QUERY_FIELDS = ("heading", "body")
PHRASE_FIELDS = ("title", "heading", "body")
# BM25F statistics of the whoosh index as flat arrays, written beside it by every build and update
POSTINGS_FILE = "postings.npz"


def _cached_column_reader(self, fieldname, column):
    """whoosh's W3PerDocReader._cached_reader, remembering that a column is absent as well.

    Unpatched, every posting of a field without a lengths column (id, slug, category, tags) costs a
    filesystem stat while a segment is written or read; a segment's columns never change.
    Measured: 10-25 % of the CPU time of building the keyword index.
    """
    try:
        return self._readers[fieldname]
    except KeyError:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        self._readers[fieldname] = reader
        return reader


whoosh3.W3PerDocReader._cached_reader = _cached_column_reader


class BM25(scoring.BM25F):
    """BM25F with the Robertson/Sparck Jones idf that Lucene and Anserini use.

    Whoosh's own idf, log(N/(df+1)) + 1, adds 1 to every term, which gives common words ("how",
    "patients", "cells") a large share of a long query's score.
    """

    def idf(self, searcher, fieldname, text):
        parent = searcher.get_parent()
        df = parent.doc_frequency(fieldname, text)
        n = parent.doc_count_all()
        return math.log(1 + (n - df + 0.5) / (df + 0.5))


def weighting() -> scoring.BM25F:
    return BM25(B=BM25_B, K1=BM25_K1)


def schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        slug=ID(stored=True),
        category=ID(stored=True),
        tags=KEYWORD(stored=True, commas=True, lowercase=True),
        title=TEXT(analyzer=ANALYZER, phrase=True),
        heading=TEXT(analyzer=ANALYZER, phrase=True),
        body=TEXT(analyzer=ANALYZER, phrase=True),
    )


class Section(Protocol):
    """What the keyword index stores of a section; kb.content.chunking.Chunk is one (engines never import content)."""

    id: str
    slug: str
    category: str
    tags: tuple[str, ...]
    title: str
    heading_path: tuple[str, ...]
    text: str


def _doc(chunk: Section) -> dict:
    return {
        "id": chunk.id,
        "slug": chunk.slug,
        "category": chunk.category,
        "tags": ",".join(chunk.tags),
        "title": chunk.title,
        "heading": " ".join(chunk.heading_path),
        "body": chunk.text,
    }


def build(path: Path, chunks: Iterable[Section]) -> None:
    """Write a fresh keyword index of the chunks into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    ix = windex.create_in(str(path), schema())
    writer = ix.writer(limitmb=256)
    for chunk in chunks:
        writer.add_document(**_doc(chunk))
    writer.commit()
    export_postings(path)


def update(path: Path, removed_slugs: Iterable[str], added: Iterable[Section]) -> None:
    """Delete the chunks of changed/removed guides and add their new chunks, in place."""
    ix = windex.open_dir(str(path))
    writer = ix.writer(limitmb=128)
    for slug in removed_slugs:
        writer.delete_by_term("slug", slug)
    for chunk in added:
        writer.add_document(**_doc(chunk))
    writer.commit(optimize=False)
    export_postings(path)


def analyse(text: str) -> list[str]:
    """Stemmed, lowercased, stop-word-free tokens as the index sees them."""
    return [t.text for t in ANALYZER(text)]


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str | None:
    """The index form of one word, or None for a stop word; memoised, as snippets stem the same words again and
    again."""
    tokens = analyse(word)
    return tokens[0] if tokens else None


@dataclass(frozen=True)
class KeywordQuery:
    """What to look for: weighted free text, glossary concepts, required phrases.

    A concept is a tuple of alternative (form, weight) pairs, e.g. ("PSA", 1.0) and ("Prescribing
    Safety Assessment", 1.0): a section scores for the best form it contains, and a multi-word form
    counts as one word (its phrase score is divided by its length), so whichever way the guide
    writes a concept it weighs like one query word and never swamps the others.
    """

    should: tuple[tuple[str, float], ...] = ()
    phrases: tuple[str, ...] = ()
    fields: tuple[str, ...] = field(default=QUERY_FIELDS)
    phrase_fields: tuple[str, ...] = field(default=PHRASE_FIELDS)
    concepts: tuple[tuple[tuple[str, float], ...], ...] = ()


class KeywordIndex:
    """An open keyword index; thread-safe through one whoosh searcher per thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._ix = windex.open_dir(str(self.path))
        self._local = threading.local()
        self._searchers: list = []
        self._lock = threading.Lock()
        self._postings: PostingsScorer | None = None
        if (self.path / POSTINGS_FILE).is_file():
            self._postings = PostingsScorer(self.path / POSTINGS_FILE)
        else:
            log.info(
                "no %s in %s: keyword queries run through whoosh's matchers (slower); rebuild to add it",
                POSTINGS_FILE,
                self.path,
            )

    def _searcher(self):
        s = getattr(self._local, "searcher", None)
        if s is None:
            s = self._ix.searcher(weighting=weighting())
            self._local.searcher = s
            with self._lock:
                self._searchers.append(s)
        return s

    def close(self) -> None:
        with self._lock:
            for s in self._searchers:
                s.close()
            self._searchers.clear()

    def doc_count(self) -> int:
        return self._ix.doc_count()

    def _build(self, kq: KeywordQuery):
        terms: list[Q.Query] = []
        for text, boost in kq.should:
            tokens = analyse(text)
            for name in kq.fields:
                fb = FIELD_BOOSTS.get(name, 1.0)
                if len(tokens) > 1 and boost < 1.0:
                    # an expansion ("prescribing safety assessment") counts as a phrase, not loose words
                    terms.append(Q.Phrase(name, tokens, boost=boost * fb))
                else:
                    terms.extend(Q.Term(name, tok, boost=boost * fb) for tok in tokens)
        for forms in kq.concepts:
            analysed = [
                (tokens, weight) for tokens, weight in ((analyse(text), weight) for text, weight in forms) if tokens
            ]
            for name in kq.fields:
                fb = FIELD_BOOSTS.get(name, 1.0)
                alts: list[Q.Query] = [
                    Q.Term(name, tokens[0], boost=weight * fb)
                    if len(tokens) == 1
                    else Q.Phrase(name, tokens, boost=weight * fb / len(tokens))
                    for tokens, weight in analysed
                ]
                if alts:
                    terms.append(alts[0] if len(alts) == 1 else Q.DisjunctionMax(alts))
        must: list[Q.Query] = []
        for phrase in kq.phrases:
            tokens = analyse(phrase)
            if not tokens:
                continue
            if len(tokens) == 1:
                alt = [Q.Term(name, tokens[0], boost=FIELD_BOOSTS[name]) for name in kq.phrase_fields]
            else:
                alt = [Q.Phrase(name, tokens, boost=FIELD_BOOSTS[name]) for name in kq.phrase_fields]
            must.append(Q.Or(alt))
        if not terms and not must:
            return None
        if not must:
            return Q.Or(terms)
        required = Q.And(must) if len(must) > 1 else must[0]
        # phrases are required; loose words and expansions only add to the score
        return Q.AndMaybe(required, Q.Or(terms)) if terms else required

    def search(self, kq: KeywordQuery, limit: int = 50) -> list[tuple[str, float]]:
        """Run the query; returns [(chunk id, BM25F score)] best first (ties by document number)."""
        query = self._build(kq)
        if query is None:
            return []
        if self._postings is not None:
            return self._postings.search(query, self._searcher(), limit)
        results = self._searcher().search(query, limit=limit)
        return [(hit["id"], float(hit.score)) for hit in results]

    def has_term(self, word: str) -> bool:
        reader = self._searcher().reader()
        return any((name, tok) in reader for name in ("body", "title", "heading") for tok in analyse(word))


# ---- fast BM25F scoring over exported postings ---------------------------------------------------
def _pack(strings: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _unpack(buf: np.ndarray) -> list[str]:
    return buf.tobytes().decode("utf-8").split("\n") if len(buf) else []


def export_postings(path: Path) -> None:
    """Write the index's BM25F statistics to `path`/postings.npz for PostingsScorer.

    Everything is read back through whoosh itself (its postings, its idf, its quantised field
    lengths, its average lengths), so the scores PostingsScorer computes are whoosh's own.
    """
    ix = windex.open_dir(str(path))
    with ix.searcher(weighting=weighting()) as s:
        r = s.reader()
        n = r.doc_count_all()
        ids = [""] * n
        for docnum, stored in r.iter_docs():
            ids[docnum] = stored["id"]
        arrays: dict[str, np.ndarray] = {"ids": _pack(ids)}
        for name in SCORED_FIELDS:
            terms: list[str] = []
            indptr = [0]
            docs: list[int] = []
            tfs: list[float] = []
            positions: list[int] = []
            npos: list[int] = []
            idfs: list[float] = []
            for btext in r.lexicon(name):
                m = r.postings(name, btext)
                before = len(docs)
                while m.is_active():
                    docs.append(m.id())
                    tfs.append(m.weight())
                    pos = m.value_as("positions")
                    positions.extend(pos)
                    npos.append(len(pos))
                    m.next()
                if len(docs) == before:
                    continue  # only in deleted documents
                terms.append(btext.decode("utf-8"))
                indptr.append(len(docs))
                idfs.append(s.idf(name, btext))
            arrays[f"{name}.terms"] = _pack(terms)
            arrays[f"{name}.indptr"] = np.asarray(indptr, dtype=np.int64)
            arrays[f"{name}.docs"] = np.asarray(docs, dtype=np.int32)
            arrays[f"{name}.tf"] = np.asarray(tfs, dtype=np.float32)
            arrays[f"{name}.npos"] = np.asarray(npos, dtype=np.int32)
            arrays[f"{name}.positions"] = np.asarray(positions, dtype=np.int32)
            arrays[f"{name}.idf"] = np.asarray(idfs, dtype=np.float64)
            arrays[f"{name}.length"] = np.asarray([r.doc_field_length(d, name, 1) for d in range(n)], dtype=np.float32)
            arrays[f"{name}.avgfl"] = np.asarray(s.avg_field_length(name) or 1, dtype=np.float64)
    tmp = path / (POSTINGS_FILE + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path / POSTINGS_FILE)


class _Field:
    def __init__(self, data, name: str):
        self.vocab = {t: i for i, t in enumerate(_unpack(data[f"{name}.terms"]))}
        self.indptr = data[f"{name}.indptr"]
        self.docs = data[f"{name}.docs"]
        self.tf = data[f"{name}.tf"].astype(np.float64)
        self.positions = data[f"{name}.positions"]
        self.posptr = np.zeros(len(self.docs) + 1, dtype=np.int64)
        np.cumsum(data[f"{name}.npos"], out=self.posptr[1:])
        self.idf = data[f"{name}.idf"]
        fl = data[f"{name}.length"].astype(np.float64)
        avgfl = float(data[f"{name}.avgfl"])
        # the length part of whoosh's bm25(), term-independent, in its order of operations
        self.norm = BM25_K1 * ((1 - BM25_B) + BM25_B * fl / avgfl)


class PostingsScorer:
    """Runs a whoosh query tree with numpy over postings.npz: whoosh's BM25F scores, far fewer Python steps.

    Term, Or, And, AndMaybe and DisjunctionMax are evaluated here with whoosh's own scoring rules
    (sums, maxima, boosts, a one-clause compound ignoring its boost); any other node (a phrase, say)
    is handed to whoosh for its matches and scores. Ties rank by document number, as in whoosh.
    """

    def __init__(self, path: Path):
        with np.load(path) as data:
            self.ids = _unpack(data["ids"])
            self.n = len(self.ids)
            self.fields = {name: _Field(data, name) for name in SCORED_FIELDS}

    def _term(self, q: Q.Term, scores: np.ndarray, matched: np.ndarray) -> None:
        f = self.fields[q.fieldname]
        i = f.vocab.get(q.text if isinstance(q.text, str) else q.text.decode("utf-8"))
        if i is None:
            return
        lo, hi = f.indptr[i], f.indptr[i + 1]
        rows = f.docs[lo:hi]
        tf = f.tf[lo:hi]
        s = f.idf[i] * ((tf * (BM25_K1 + 1)) / (tf + f.norm[rows]))
        if q.boost != 1.0:
            s = s * q.boost
        scores[rows] += s
        matched[rows] = True

    def _phrase(self, q: Q.Phrase, scores: np.ndarray, matched: np.ndarray) -> None:
        """Documents holding the words at consecutive positions, scored as the sum of the words' BM25F (as SpanNear2
        does)."""
        f = self.fields[q.fieldname]
        terms = [f.vocab.get(w if isinstance(w, str) else w.decode("utf-8")) for w in q.words]
        if not terms or any(t is None for t in terms):
            return
        spans = [(int(f.indptr[t]), int(f.indptr[t + 1])) for t in terms]
        cand = f.docs[spans[0][0] : spans[0][1]]
        for lo, hi in spans[1:]:
            cand = np.intersect1d(cand, f.docs[lo:hi], assume_unique=True)
        if not len(cand):
            return
        starts = None
        for k, (lo, hi) in enumerate(spans):
            at = lo + np.searchsorted(f.docs[lo:hi], cand)  # this word's posting in each candidate
            first, count = f.posptr[at], f.posptr[at + 1] - f.posptr[at]
            within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
            pos = f.positions[np.repeat(first, count) + within].astype(np.int64)
            keys = (np.repeat(cand.astype(np.int64), count) << 32) | (pos - k + (1 << 31))
            starts = keys if starts is None else np.intersect1d(starts, keys)
            if not len(starts):
                return
        docs = np.unique(starts >> 32)
        total = np.zeros(len(docs))
        for t, (lo, hi) in zip(terms, spans, strict=True):
            at = lo + np.searchsorted(f.docs[lo:hi], docs)
            tf = f.tf[at]
            total += f.idf[t] * ((tf * (BM25_K1 + 1)) / (tf + f.norm[docs]))
        if q.boost != 1.0:
            total = total * q.boost
        scores[docs] += total
        matched[docs] = True

    def _eval(self, q, searcher) -> tuple[np.ndarray, np.ndarray]:
        kind = type(q)
        if kind in (Q.Or, Q.And, Q.DisjunctionMax) and len(q.subqueries) == 1:
            return self._eval(q.subqueries[0], searcher)  # whoosh drops a one-clause compound's boost too
        scores = np.zeros(self.n)
        matched = np.zeros(self.n, dtype=bool)
        if isinstance(q, _NullQuery):
            return scores, matched
        if kind is Q.Term and q.fieldname in self.fields and not q.minquality:
            self._term(q, scores, matched)
            return scores, matched
        if kind is Q.Phrase and q.fieldname in self.fields and q.slop == 1:
            self._phrase(q, scores, matched)
            return scores, matched
        if kind is Q.Or and not q.minmatch and not q.scale and q.subqueries:
            for sub in q.subqueries:
                if type(sub) is Q.Term and sub.fieldname in self.fields and not sub.minquality:
                    self._term(sub, scores, matched)
                elif type(sub) is Q.Phrase and sub.fieldname in self.fields and sub.slop == 1:
                    self._phrase(sub, scores, matched)
                else:
                    s, m = self._eval(sub, searcher)
                    scores[m] += s[m]
                    matched |= m
            return (scores * q.boost if q.boost != 1.0 else scores), matched
        if kind is Q.And and q.subqueries:
            matched[:] = True
            for sub in q.subqueries:
                s, m = self._eval(sub, searcher)
                scores += np.where(m, s, 0.0)
                matched &= m
            return (scores * q.boost if q.boost != 1.0 else scores), matched
        if kind is Q.DisjunctionMax and q.subqueries:
            scores[:] = -np.inf
            for sub in q.subqueries:
                s, m = self._eval(sub, searcher)
                np.maximum(scores, np.where(m, s, -np.inf), out=scores)
                matched |= m
            scores[~matched] = 0.0
            return (scores * q.boost if q.boost != 1.0 else scores), matched
        if kind is Q.AndMaybe:
            scores, matched = self._eval(q.a, searcher)
            s, m = self._eval(q.b, searcher)
            both = matched & m
            scores[both] += s[both]
            return scores, matched
        # anything else (phrases, ...): whoosh's own matcher, every match with its score
        for score, docnum in searcher.search(q, limit=None).top_n:
            scores[docnum] = score
            matched[docnum] = True
        return scores, matched

    def search(self, query, searcher, limit: int) -> list[tuple[str, float]]:
        """The top `limit` [(chunk id, score)] for a whoosh query."""
        scores, matched = self._eval(query, searcher)
        cand = np.flatnonzero(matched)
        if len(cand) > limit:
            s = scores[cand]
            kth = np.partition(s, len(s) - limit)[len(s) - limit]
            cand = cand[s >= kth]
        order = cand[np.lexsort((cand, -scores[cand]))][:limit]
        return [(self.ids[d], float(scores[d])) for d in order]
