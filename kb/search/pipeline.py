"""Searcher: the live index generation and the search stages in order: plan, retrieve, fuse, present."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb.content.chunking import Chunk
from kb.content.glossary import WORD_RE, Term
from kb.engines.keyword_index import analyse
from kb.errors import IndexNotBuiltError, KBError
from kb.index.generation import BUILD_COMMAND, IndexFiles, current_path, current_problem, has_manifest
from kb.search.fuse import rank
from kb.search.plan import SYNONYM_WEIGHT, Unit, plan
from kb.search.present import SearchResponse, present
from kb.search.request import SearchRequest
from kb.search.retrieve import retrieve

log = logging.getLogger(__name__)


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
                f"the search index generation {gen.name} is damaged ({exc.__class__.__name__}); run "
                f"`{BUILD_COMMAND} --full`"
            ) from exc

    return wrapper


class Searcher:
    """Hybrid search over the live index generation, switching generations between requests.

    Example:
        >>> searcher = Searcher("index", embedder)
        >>> searcher.search(SearchRequest("how long is the psa", limit=5)).hits[0].url
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

    # ---- search ------------------------------------------------------------------------------
    @_index_faults
    def search(self, request: SearchRequest) -> SearchResponse:
        """Search the live index: plan the query, retrieve candidates, fuse them, present the result.

        Raises:
            QueryError: a parameter is out of range.
            IndexNotBuiltError / IndexMismatchError: no usable index.
        """
        started = time.perf_counter()
        request.check(self.max_query_length, self.max_limit)
        gen = self.generation()
        qp = plan(gen, request)
        found = retrieve(gen, qp, request, self.embedder)
        return present(gen, request, qp, found, rank(gen, found, qp, request), started)

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
