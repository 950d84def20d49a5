"""Searcher: query parsing, acronym expansion, keyword + semantic retrieval, fusion, filters, snippets."""

from __future__ import annotations

import bisect
import functools
import html
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.content.chunking import Chunk
from kb.content.glossary import WORD_RE, Term
from kb.engines.keyword_index import KeywordQuery, analyse, stem
from kb.engines.spelling import MIN_LENGTH
from kb.errors import IndexMismatchError, IndexNotBuiltError, KBError, QueryError
from kb.index.generation import BUILD_COMMAND, IndexFiles, current_path, current_problem, has_manifest
from kb.search.answer import Answer, Coverage, Wanted, assess

log = logging.getLogger(__name__)

MODES = ("hybrid", "keyword", "semantic")
RRF_K = 60
POOL = 50
# A glossary synonym ("prescribing exam" for PSA) is a near equivalent, not an exact one.
SYNONYM_WEIGHT = 0.7
# Below this cosine similarity a semantic-only hit is a guess, not an answer.
WEAK_SEMANTIC = 0.30
HEADING_WEIGHT = 1.0 / (RRF_K + 1)
# Question and function words: every guide heading is a question ("How do I ..."), so these
# words say nothing about which section answers. They stay in what the encoder sees (they carry
# intent there) but do not score keyword matches or heading coverage, unless nothing else is left.
QUERY_STOP_WORDS = frozenset(
    """i i'm im i've ive i'd id i'll me my mine myself u ur how what whats what's why who whom whose which where
    do does did doing don't dont doesn't doesnt didn't is am was were been being isn't wasn't there their they them
    he she his her it's its could should would shall must might about just really actually also so too very any
    anything some something someone anyone please thanks thank hi hello ok okay""".split()
)


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


@dataclass(frozen=True)
class ParsedQuery:
    raw: str
    words: tuple[str, ...]
    phrases: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join((*self.phrases, *self.words))


def parse_query(raw: str) -> ParsedQuery:
    """Split a query into "quoted phrases" and loose words; everything else is plain text."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", raw)
    phrases = tuple(p.strip() for p in re.findall(r'"([^"]+)"', text) if p.strip())
    rest = re.sub(r'"[^"]*"', " ", text).replace('"', " ")
    words = tuple(WORD_RE.findall(rest))
    return ParsedQuery(raw, words, phrases)


@dataclass(frozen=True)
class Unit:
    """One thing a query asks about: a plain word, or a glossary concept however it was typed.

    A concept's `forms` are the ways a guide may write it, each with a weight: the term, its
    aliases and its expansion are exact equivalents (1.0), its synonyms near ones. Whichever exact
    form the student typed, the concept searches the same: "PSA" and "prescribing safety
    assessment" are one query.
    """

    text: str
    term: Term | None = None
    forms: tuple[tuple[str, float], ...] = ()
    exact: bool = False  # typed as the term, an alias, the expansion or a clear short form of it

    @property
    def function_word(self) -> bool:
        return self.term is None and self.text.casefold().replace("’", "'") in QUERY_STOP_WORDS

    @property
    def semantic_text(self) -> str:
        """What the encoder sees: acronyms spelled out, in one canonical wording per concept."""
        t = self.term
        if t is None or not self.exact:
            return self.text  # a synonym is the student's own wording: keep it
        return f"{t.expansion} ({t.term})"


def wanted_of(pq: ParsedQuery, units: Sequence[Unit]) -> list[Wanted]:
    """What a query asks about, for coverage: each phrase, content word and glossary concept (any of its forms)."""
    out = [Wanted((frozenset(analyse(p)),)) for p in pq.phrases if analyse(p)]
    for u in units:
        if u.term is not None:
            out.append(Wanted(tuple(frozenset(analyse(form)) for form, _ in u.forms)))
        elif not u.function_word and analyse(u.text):
            out.append(Wanted((frozenset(analyse(u.text)),)))
    return out


def rewrite_query(raw: str, corrections: dict[str, str]) -> str:
    """The query as typed with corrected words swapped in; quoted phrases are left alone."""
    parts = re.split(r'("[^"]*")', raw)
    for i in range(0, len(parts), 2):
        parts[i] = WORD_RE.sub(lambda m: corrections.get(m.group(0), m.group(0)), parts[i])
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def normalise_query(raw: str) -> str:
    """Lowercase, single-spaced form used for caching and analytics."""
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", raw)).strip().lower()


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
    snippet = "".join(out).replace("\n", " ")
    return ("… " if start > 0 else "") + snippet + (" …" if end < len(text) else "")


class Generation(IndexFiles):
    """One loaded, immutable index generation and the glossary forms query planning matches against it.

    The files are opened and checked by kb.index.generation; what a query's words mean in this
    generation's glossary (units, concept forms, heading terms) is the read pipeline's business.
    A request uses one generation from start to end.
    """

    def __init__(self, path: Path, model: str | None):
        super().__init__(path, model)
        # Every way of writing a glossary concept, as casefolded word sequences; exact forms
        # (term, alias, expansion) win over synonyms when two entries claim the same words.
        # value: (entry, kind) with kind "exact", "synonym" or "short" (a clear short form of a name)
        self._forms: dict[tuple[str, ...], tuple[Term, str]] = {}
        for kind in ("exact", "synonym"):
            for t in self.glossary.terms:
                for name in (t.term, *t.aliases, t.expansion) if kind == "exact" else t.synonyms:
                    key = tuple(w.casefold() for w in WORD_RE.findall(name))
                    if key:
                        self._forms.setdefault(key, (t, kind))
        for key, t in self.short_forms.items():
            self._forms.setdefault(key, (t, "short"))
        self._longest_form = max((len(k) for k in self._forms), default=0)
        self._heading_cache: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def _ambiguous(self, word: str, term: Term) -> bool:
        """A lowercase word that is also an ordinary word of the guides ("news", "tab") is not the acronym."""
        if not word.islower():
            return False
        acronym = any(name.isupper() and name.casefold() == word for name in (term.term, *term.aliases))
        return acronym and word in self.vocabulary.lowercase_words

    def concept_forms(self, term: Term, typed: str) -> tuple[tuple[str, float], ...]:
        forms: dict[str, tuple[str, float]] = {}
        for name in (term.term, *term.aliases, term.expansion):
            forms.setdefault(name.casefold(), (name, 1.0))
        for name in term.synonyms:
            forms.setdefault(name.casefold(), (name, SYNONYM_WEIGHT))
        if typed.casefold() in forms:
            forms[typed.casefold()] = (forms[typed.casefold()][0], 1.0)
        else:
            forms[typed.casefold()] = (typed, 1.0)
        return tuple(forms.values())

    def units(self, words: Sequence[str]) -> list[Unit]:
        """Group query words into units, matching the longest glossary form at each position."""
        folded = [w.casefold() for w in words]
        out: list[Unit] = []
        i = 0
        while i < len(words):
            for n in range(min(self._longest_form, len(words) - i), 0, -1):
                found = self._forms.get(tuple(folded[i : i + n]))
                if found is None or (n == 1 and self._ambiguous(words[i], found[0])):
                    continue
                term, kind = found
                text = " ".join(words[i : i + n])
                # a short form searches exactly as the full name does
                forms = self.concept_forms(term, term.expansion if kind == "short" else text)
                out.append(Unit(text, term, forms, kind != "synonym"))
                i += n
                break
            else:
                out.append(Unit(words[i]))
                i += 1
        return out

    def heading_terms(self, c: Chunk) -> tuple[frozenset[str], frozenset[str], int]:
        """Stems, glossary concepts and number of content units of a chunk's heading (its guide title for an intro)."""
        hit = self._heading_cache.get(c.id)
        if hit is None:
            words = WORD_RE.findall(c.heading if c.anchor else c.title)
            units = [u for u in self.units(words) if not u.function_word and (u.term is not None or analyse(u.text))]
            terms = [u.term for u in units if u.term is not None]
            # a heading saying "PSA" also covers the words "prescribing safety assessment"
            names = [n for t in terms for n in (t.term, *t.aliases, t.expansion)]
            stems = frozenset(t for w in (*words, *names) for t in analyse(w))
            hit = self._heading_cache[c.id] = (stems, frozenset(t.term for t in terms), len(units))
        return hit


def _index_faults(method):
    """Map an error raised by a damaged live generation to IndexNotBuiltError (503) and drop it.

    Whoosh opens segment files lazily, so a file removed after loading surfaces mid-search. Any
    OSError, or any other error while the generation is no longer intact, is the index's fault;
    anything else is a bug and propagates unchanged.
    """

    @functools.wraps(method)
    def wrapper(self: Searcher, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except KBError:
            raise
        except Exception as exc:
            gen = self._gen
            if gen is None or not (isinstance(exc, OSError) or not gen.intact()):
                raise
            log.error(
                "index generation %s failed during a search (%s: %s); dropped until it is rebuilt",
                gen.name,
                exc.__class__.__name__,
                exc,
            )
            self.invalidate()
            raise IndexNotBuiltError(
                f"the search index generation {gen.name} is damaged ({exc.__class__.__name__}); run `{BUILD_COMMAND} --full`"
            ) from exc

    return wrapper


class Searcher:
    """Hybrid search over the live index generation, switching generations between requests.

    Example:
        >>> searcher = Searcher("index", embedder)
        >>> searcher.search("how long is the psa", limit=5).hits[0].url
        '/guides/psa-format-and-sections#how-long-is-the-psa'
    """

    def __init__(
        self,
        index_dir: Path | str,
        embedder=None,
        reload_interval: float = 1.0,
        max_query_length: int = 300,
        max_limit: int = 50,
    ):
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.reload_interval = reload_interval
        self.max_query_length = max_query_length
        self.max_limit = max_limit
        self._gen: Generation | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._failed: tuple[Path, type[KBError], str, float] | None = None

    # ---- generations -------------------------------------------------------------------------
    def generation(self) -> Generation:
        """The live generation, reloading if `current` moved (checked every reload_interval s)."""
        now = time.monotonic()
        gen = self._gen
        if gen is not None and now - self._checked < self.reload_interval:
            return gen
        with self._lock:
            self._checked = now
            target = current_path(self.index_dir)
            if target is None:
                # the generation served until now is gone with `current`: answering from it on some
                # requests and 503 on others would flap, so it is dropped and every request says why
                self._gen = None
                raise IndexNotBuiltError(
                    f"no search index has been built ({current_problem(self.index_dir)}); run `{BUILD_COMMAND}`"
                )
            if self._gen is not None and self._gen.path == target:
                if self._gen.intact():
                    return self._gen
                log.error(
                    "index generation %s changed on disk after loading (a file was removed or replaced)", self._gen.name
                )
                self._gen = None
            if self._gen is not None and not has_manifest(target):
                self._gen = None
            failed = self._failed
            if failed and failed[0] == target and now - failed[3] < self.reload_interval:
                self._gen = None
                raise failed[1](failed[2])  # a broken generation is re-checked at most once per interval
            model = getattr(self.embedder, "name", None)
            try:
                new = Generation(target, model)
            except KBError as exc:
                # `current` moved to something unusable: stop serving the old generation too (no flapping)
                self._gen = None
                self._failed = (target, type(exc), exc.message, now)
                log.error("cannot load index generation %s: %s", target, exc.message)
                raise
            self._failed = None
            old, self._gen = self._gen, new
            if old is not None:
                log.info("switched index generation %s -> %s", old.name, new.name)
            else:
                log.info("loaded index generation %s", new.name)
            return new

    def invalidate(self) -> None:
        """Force a re-check of the live generation on the next request."""
        self._checked = 0.0
        with self._lock:
            self._gen = None
            self._failed = None

    # ---- validation --------------------------------------------------------------------------
    def check_params(self, query: str, limit: int, mode: str) -> None:
        if not isinstance(query, str) or not query.strip():
            raise QueryError("parameter 'q' is required: type a question or a few words", "q")
        if not any(ch.isalnum() for ch in query):
            raise QueryError(
                "parameter 'q' has no letters or digits to search for: type a question or a few words", "q"
            )
        if len(query) > self.max_query_length:
            raise QueryError(
                f"parameter 'q' is {len(query)} characters long; the limit is {self.max_query_length}", "q"
            )
        if mode not in MODES:
            raise QueryError(f"parameter 'mode' must be one of {', '.join(MODES)}; got '{mode[:40]}'", "mode")
        if not 1 <= limit <= self.max_limit:
            raise QueryError(
                f"parameter 'limit' must be a whole number from 1 to {self.max_limit}; got {limit}", "limit"
            )

    # ---- search ------------------------------------------------------------------------------
    @_index_faults
    def search(
        self,
        query: str,
        limit: int = 10,
        mode: str = "hybrid",
        category: str | None = None,
        tag: str | None = None,
        spellcheck: bool = True,
    ) -> SearchResponse:
        """Search the live index.

        Args:
            query: Free text; "double quotes" require an exact phrase.
            limit: Maximum number of sections returned (1..max_limit).
            mode: "hybrid" (default), "keyword" or "semantic".
            category: Only guides of this category.
            tag: Only guides with this tag.
            spellcheck: Search likely corrections of unknown words instead of them (reported as
                did_you_mean with corrected=True); when off, a correction is only suggested.

        Raises:
            QueryError: a parameter is out of range.
            IndexNotBuiltError / IndexMismatchError: no usable index.
        """
        started = time.perf_counter()
        self.check_params(query, limit, mode)
        gen = self.generation()
        pq = parse_query(query)
        # Unknown words with a likely spelling are searched as corrected (spellcheck on) and the
        # page says so, with a link back; with spellcheck off the suggestion is only offered.
        suggestions = self._corrections(gen, pq) if pq.words else {}
        corrections = suggestions if spellcheck else {}
        did_you_mean = rewrite_query(query, suggestions) if suggestions else None
        units = gen.units([corrections.get(w, w) for w in pq.words])
        expansions: list[str] = []
        for u in units:
            if u.term is not None:
                expansions.extend(f for f in (u.term.expansion, u.term.term) if f.casefold() != u.text.casefold())
        expansions = list(dict.fromkeys(expansions))
        scoring = [u for u in units if not u.function_word] or units

        pool = max(POOL, limit * 3)
        keyword_ids: list[str] = []
        semantic: list[tuple[str, float]] = []
        if mode in ("hybrid", "keyword"):
            kq = KeywordQuery(
                should=tuple((u.text, 1.0) for u in scoring if u.term is None),
                phrases=pq.phrases,
                category=category,
                tag=tag,
                concepts=tuple(u.forms for u in scoring if u.term is not None),
            )
            keyword_ids = [cid for cid, _ in gen.keyword.search(kq, limit=pool)]
        if mode in ("hybrid", "semantic"):
            semantic = self._semantic(gen, pq, units, category, tag, pool)
        semantic_ids = [cid for cid, _ in semantic]
        sem_score = dict(semantic)

        if mode == "keyword":
            fused = [(cid, 1.0 / (RRF_K + i)) for i, cid in enumerate(keyword_ids, 1)]
        elif mode == "semantic":
            fused = [(cid, s) for cid, s in semantic]
        else:
            # Weak semantic neighbours must not bury a clear keyword hit: only confident
            # semantic hits take part in fusion at full weight.
            keyword_set = set(keyword_ids)
            strong = [cid for cid in semantic_ids if sem_score[cid] >= WEAK_SEMANTIC or cid in keyword_set]
            fused = reciprocal_rank_fusion([keyword_ids, strong], weights=[1.0, 1.0])
            fused_ids = {cid for cid, _ in fused}
            weak = [cid for cid in semantic_ids if cid not in fused_ids]
            fused += [(cid, 0.1 / (RRF_K + POOL + i)) for i, cid in enumerate(weak, 1)]

        if mode != "semantic" and fused:
            fused = self._heading_boost(gen, fused, pq, units)

        highlight = self._highlight_terms(pq, scoring)
        stems = [t for w in highlight for t in analyse(w)]
        kw_rank = {cid: i for i, cid in enumerate(keyword_ids, 1)}
        sem_rank = {cid: i for i, cid in enumerate(semantic_ids, 1)}
        hits: list[Hit] = []
        for cid, score in fused[: max(limit * 3, limit)]:
            c = gen.by_id.get(cid)
            if c is None:
                continue
            weak_hit = cid not in kw_rank and sem_score.get(cid, 1.0) < WEAK_SEMANTIC
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
                    weak_hit,
                )
            )
        confident = bool(keyword_ids) or any(not h.weak for h in hits)
        groups = group_hits(hits, per_guide=3, limit=limit)
        # a section outside the semantic pool scores at most the pool's lowest cosine
        floor = min(sem_score.values()) if sem_score else None
        candidates = [(gen.by_id[g.hits[0].id], sem_score.get(g.hits[0].id, floor)) for g in groups[:3]]
        coverage, answer = assess(candidates, wanted_of(pq, scoring), highlight)
        return SearchResponse(
            query=query,
            mode=mode,
            hits=tuple(hits[:limit]),
            groups=groups,
            generation=gen.name,
            took_ms=(time.perf_counter() - started) * 1000,
            confident=confident,
            did_you_mean=did_you_mean,
            corrected=bool(corrections),
            expansions=tuple(expansions),
            filters={"category": category, "tag": tag},
            highlight=tuple(highlight),
            coverage=coverage,
            answer=answer,
        )

    @staticmethod
    def _highlight_terms(pq: ParsedQuery, units: Sequence[Unit]) -> list[str]:
        """Words to mark in snippets and on the guide page: content words, phrases and exact concept forms."""
        out: list[str] = list(pq.phrases)
        for u in units:
            if u.term is None:
                if analyse(u.text):
                    out.append(u.text)
            else:
                out.extend(form for form, weight in u.forms if weight >= 1.0)
        return list(dict.fromkeys(out))

    def _heading_boost(
        self, gen: Generation, fused: list[tuple[str, float]], pq: ParsedQuery, units: Sequence[Unit]
    ) -> list[tuple[str, float]]:
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
        wanted: list[tuple[frozenset[str], str | None, bool]] = [
            (frozenset(analyse(p)), None, False) for p in pq.phrases
        ]
        for u in units:
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

    def _semantic(
        self, gen: Generation, pq: ParsedQuery, units: Sequence[Unit], category, tag, pool
    ) -> list[tuple[str, float]]:
        if self.embedder is None:
            raise IndexMismatchError("semantic search needs an embedding model; none is configured")
        text = " ".join((*pq.phrases, *(u.semantic_text for u in units)))
        encode_query = getattr(self.embedder, "encode_query", None)
        vector = encode_query(text) if encode_query else self.embedder.encode([text])[0]
        filtered = bool(category or tag or pq.phrases)
        k = len(gen.chunks) if filtered and len(gen.chunks) <= 20000 else pool * (8 if filtered else 1)
        out: list[tuple[str, float]] = []
        phrase_res = [re.compile(r"\b" + r"\s+".join(map(re.escape, p.split())) + r"\b", re.I) for p in pq.phrases]
        for row, score in gen.vectors.search(np.asarray(vector, dtype=np.float32), k):
            c = gen.chunks[row]
            if category and c.category != category:
                continue
            if tag and tag not in c.tags:
                continue
            if phrase_res and not all(r.search(f"{c.title}\n{' '.join(c.heading_path)}\n{c.text}") for r in phrase_res):
                continue
            out.append((c.id, score))
            if len(out) >= pool:
                break
        return out

    def _corrections(self, gen: Generation, pq: ParsedQuery) -> dict[str, str]:
        """Likely intended words for query words the index has never seen (and no glossary form is)."""
        out: dict[str, str] = {}
        for i, w in enumerate(pq.words):
            lw = w.casefold()
            if len(lw) < MIN_LENGTH or not lw.isalpha() or (lw,) in gen._forms or not analyse(lw):
                continue
            if any(ch.isupper() for ch in w[1:]) or (i > 0 and w[0].isupper()):
                continue  # CamelCase, an acronym or a name mid-sentence: an identifier, not a typo
            if lw in gen.vocabulary or gen.keyword.has_term(lw):
                continue
            suggestion = gen.vocabulary.suggest(lw)
            if suggestion:
                out[w] = suggestion
        return out

    @_index_faults
    def related(self, slug: str, limit: int = 4) -> list[tuple[str, str, float]]:
        """Guides nearest to `slug` in embedding space (mean of its chunk vectors), itself excluded."""
        gen = self.generation()
        rows = [i for i, c in enumerate(gen.chunks) if c.slug == slug]
        if not rows:
            return []
        centre = np.mean([gen.vectors.reconstruct(r) for r in rows], axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        best: dict[str, tuple[str, float]] = {}
        for row, score in gen.vectors.search(centre.astype(np.float32), min(len(gen.chunks), 200)):
            c = gen.chunks[row]
            if c.slug != slug and c.slug not in best:
                best[c.slug] = (c.title, score)
            if len(best) >= limit:
                break
        return [(s, t, sc) for s, (t, sc) in best.items()]

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self.generation().by_id.get(chunk_id)
