"""The only module that imports whoosh: BM25F keyword index over chunks, with phrases and filters."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from whoosh import index as windex
from whoosh import query as Q
from whoosh import scoring
from whoosh.analysis import StemmingAnalyzer
from whoosh.fields import ID, KEYWORD, TEXT, Schema

from kb.chunking import Chunk

log = logging.getLogger(__name__)

ANALYZER = StemmingAnalyzer(minsize=1)
FIELD_BOOSTS = {"title": 3.0, "heading": 2.0, "body": 1.0}


def schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        slug=ID(stored=True),
        category=ID(stored=True),
        tags=KEYWORD(stored=True, commas=True, lowercase=True),
        title=TEXT(analyzer=ANALYZER, phrase=True),
        heading=TEXT(analyzer=ANALYZER, phrase=True),
        body=TEXT(analyzer=ANALYZER, phrase=True, spelling=True),
    )


def _doc(chunk: Chunk) -> dict:
    return {
        "id": chunk.id,
        "slug": chunk.slug,
        "category": chunk.category,
        "tags": ",".join(chunk.tags),
        "title": chunk.title,
        "heading": " ".join(chunk.heading_path),
        "body": chunk.text,
    }


def build(path: Path, chunks: Iterable[Chunk]) -> None:
    """Write a fresh keyword index of the chunks into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    ix = windex.create_in(str(path), schema())
    writer = ix.writer(limitmb=256)
    for chunk in chunks:
        writer.add_document(**_doc(chunk))
    writer.commit()


def update(path: Path, removed_slugs: Iterable[str], added: Iterable[Chunk]) -> None:
    """Delete the chunks of changed/removed guides and add their new chunks, in place."""
    ix = windex.open_dir(str(path))
    writer = ix.writer(limitmb=128)
    for slug in removed_slugs:
        writer.delete_by_term("slug", slug)
    for chunk in added:
        writer.add_document(**_doc(chunk))
    writer.commit(optimize=False)


def analyse(text: str) -> list[str]:
    """Stemmed, lowercased, stop-word-free tokens as the index sees them."""
    return [t.text for t in ANALYZER(text)]


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str | None:
    """The index form of one word, or None for a stop word; memoised, as snippets stem the same words again and again."""
    tokens = analyse(word)
    return tokens[0] if tokens else None


@dataclass(frozen=True)
class KeywordQuery:
    """What to look for: weighted free text, required phrases, optional filters."""

    should: tuple[tuple[str, float], ...] = ()
    phrases: tuple[str, ...] = ()
    category: str | None = None
    tag: str | None = None
    fields: tuple[str, ...] = field(default=("title", "heading", "body"))


class KeywordIndex:
    """An open keyword index; thread-safe through one whoosh searcher per thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._ix = windex.open_dir(str(self.path))
        self._local = threading.local()
        self._searchers: list = []
        self._lock = threading.Lock()

    def _searcher(self):
        s = getattr(self._local, "searcher", None)
        if s is None:
            s = self._ix.searcher(weighting=scoring.BM25F(B=0.75, K1=1.2))
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
        must: list[Q.Query] = []
        for phrase in kq.phrases:
            tokens = analyse(phrase)
            if not tokens:
                continue
            if len(tokens) == 1:
                alt = [Q.Term(name, tokens[0], boost=FIELD_BOOSTS[name]) for name in kq.fields]
            else:
                alt = [Q.Phrase(name, tokens, boost=FIELD_BOOSTS[name]) for name in kq.fields]
            must.append(Q.Or(alt))
        if not terms and not must:
            return None
        if not must:
            return Q.Or(terms)
        required = Q.And(must) if len(must) > 1 else must[0]
        # phrases are required; loose words and expansions only add to the score
        return Q.AndMaybe(required, Q.Or(terms)) if terms else required

    def search(self, kq: KeywordQuery, limit: int = 50) -> list[tuple[str, float]]:
        """Run the query; returns [(chunk id, BM25F score)] best first."""
        query = self._build(kq)
        if query is None:
            return []
        filters = []
        if kq.category:
            filters.append(Q.Term("category", kq.category))
        if kq.tag:
            filters.append(Q.Term("tags", kq.tag.lower()))
        flt = Q.And(filters) if filters else None
        results = self._searcher().search(query, limit=limit, filter=flt)
        return [(hit["id"], float(hit.score)) for hit in results]

    def suggest(self, word: str, limit: int = 1) -> list[str]:
        """Spelling suggestions for one word from the indexed body vocabulary."""
        corrector = self._searcher().corrector("body")
        return list(corrector.suggest(word.lower(), limit=limit, maxdist=2))

    def has_term(self, word: str) -> bool:
        reader = self._searcher().reader()
        return any((name, tok) in reader for name in ("body", "title", "heading") for tok in analyse(word))
