"""KnowledgeBase: the one object that owns settings, the guide library and the searcher."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb import clock
from kb.content.glossary import Glossary
from kb.content.guide import Guide, Taxonomy, guide_paths, load_guides
from kb.content.render import Rendered, render_markdown
from kb.engines.embedding import make_encoder
from kb.errors import ContentError, GuideUnavailableError, KBError, NotFoundError, Problem
from kb.index.generation import ContentHashes, content_hashes, index_status
from kb.search.pipeline import Searcher
from kb.search.present import SearchResponse
from kb.search.request import SearchRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibrarySnapshot:
    guides: tuple[Guide, ...]
    by_slug: dict[str, Guide]
    taxonomy: Taxonomy
    glossary: Glossary
    problems: tuple[Problem, ...]
    fingerprint: tuple


class Library:
    """The guides as they are on disk now, re-read when files change (live preview for free)."""

    def __init__(self, content_dir: Path, check_interval: float = 1.0, today: Callable[[], dt.date] | None = None):
        self.content_dir = Path(content_dir)
        self.check_interval = check_interval
        self.today = today or clock.today  # the day "last reviewed in the future" is judged on
        self._snap: LibrarySnapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._render_cache: dict[tuple[str, str], Rendered] = {}

    def fingerprint(self) -> tuple:
        """Path, mtime and size of every guide, the glossary and the taxonomy: changes whenever any of them does."""
        items = []
        for p in [*guide_paths(self.content_dir), self.content_dir / "glossary.yml", self.content_dir / "taxonomy.yml"]:
            try:
                st = p.stat()
                items.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                items.append((str(p), 0, 0))
        return tuple(items)

    def snapshot(self) -> LibrarySnapshot:
        now = time.monotonic()
        snap = self._snap
        if snap is not None and now - self._checked < self.check_interval:
            return snap
        with self._lock:
            self._checked = now
            fp = self.fingerprint()
            if self._snap is not None and self._snap.fingerprint == fp:
                return self._snap
            problems: list[Problem] = []
            try:
                taxonomy = Taxonomy.load(self.content_dir)
                guides, problems = load_guides(self.content_dir, self.today())
            except ContentError as exc:
                taxonomy, guides, problems = Taxonomy({}, frozenset()), [], list(exc.problems)
            try:
                glossary = Glossary.load(self.content_dir)
            except ContentError as exc:
                glossary = Glossary(())
                problems.extend(exc.problems)
            for p in problems:
                if p.level == "error":
                    log.warning("content problem: %s", p.format())
            self._snap = LibrarySnapshot(
                tuple(guides), {g.slug: g for g in guides}, taxonomy, glossary, tuple(problems), fp
            )
            return self._snap

    def guide(self, slug: str) -> Guide:
        """The guide called `slug`; GuideUnavailableError when its file is there but fails the checks."""
        snap = self.snapshot()
        g = snap.by_slug.get(slug)
        if g is not None:
            return g
        broken = [p for p in snap.problems if p.level == "error" and Path(p.path).stem == slug]
        if broken:
            raise GuideUnavailableError(
                "this guide's latest edit does not pass the site's checks, so it is hidden until it is fixed; "
                "please try again later or search for the topic",
                broken,
            )
        raise NotFoundError(f"no guide called '{slug[:80]}'")

    def render(self, guide: Guide) -> Rendered:
        snap = self.snapshot()
        key = (guide.slug, guide.content_hash + str(hash(snap.glossary)))
        hit = self._render_cache.get(key)
        if hit is None:
            hit = render_markdown(guide.body, snap.glossary)
            if len(self._render_cache) > 500:
                self._render_cache.clear()
            self._render_cache[key] = hit
        return hit


class KnowledgeBase:
    """Everything a request needs; lives in `app.extensions["kb"]`. Cheap to create: the model and
    the index load lazily, once per process, on first use."""

    def __init__(self, settings: dict[str, Any], embedder=None):
        self.settings = settings
        self.content_dir = Path(settings["KB_CONTENT_DIR"])
        self.index_dir = Path(settings["KB_INDEX_DIR"])
        self.library = Library(self.content_dir, today=self.today)
        self.embedder = embedder or make_encoder(
            settings["KB_MODEL"], self.index_dir, threads=settings["KB_TORCH_THREADS"]
        )
        self.searcher = Searcher(
            self.index_dir,
            self.embedder,
            reload_interval=settings["KB_RELOAD_INTERVAL"],
            max_query_length=settings["KB_MAX_QUERY_LENGTH"],
            max_limit=settings["KB_MAX_LIMIT"],
        )
        # (content fingerprint, day) -> the content's hashes: /healthz re-reads guides only after an edit
        self._hashes: tuple[tuple, ContentHashes] | None = None

    # ---- search: the HTML page and the JSON API ask alike ---------------------------------------
    def search_request(self, args: Mapping[str, Any]) -> SearchRequest:
        """The request's parameters as one checked SearchRequest; raise QueryError naming the bad parameter."""
        taxonomy = self.library.snapshot().taxonomy
        return SearchRequest.from_args(args, self.settings, taxonomy.categories, taxonomy.tags)

    def search(self, request: SearchRequest) -> SearchResponse:
        """Search, leaving out guides that are no longer in the content folder.

        The index lags the content until a build succeeds, and a build refused for a broken guide
        leaves it lagging: a result for a deleted or now-broken guide would link to a 404.
        """
        response = self.searcher.search(request)
        present = self.library.snapshot().by_slug
        if all(h.slug in present for h in response.hits):
            return response
        gone = sorted({h.slug for h in response.hits if h.slug not in present})
        log.info("search results for guides no longer in the content folder left out: %s", ", ".join(gone))
        return dataclasses.replace(
            response,
            hits=tuple(h for h in response.hits if h.slug in present),
            groups=tuple(g for g in response.groups if g.slug in present),
            answer=response.answer if response.answer is None or response.answer.slug in present else None,
        )

    def closest_guide(self, question: str) -> dict[str, str] | None:
        """The guide search shows first for `question`, as {slug, title, category, url}; None when no guide comes
        up or search cannot run (the content-gap report names it as the place to start a missing guide)."""
        try:
            groups = self.search(SearchRequest(question, limit=3)).groups
        except KBError:
            return None
        if not groups:
            return None
        g = groups[0]
        return {"slug": g.slug, "title": g.title, "category": g.category, "url": g.url}

    def search_report(self, store, *, days: int, limit: int) -> dict[str, Any]:
        """The content-gap report (kb/tools/gaps.py) on `store`, a kb.store.Store: its lists, and the questions search
        could not answer grouped by this site's model, each with its closest guide. Raises StoreError."""
        from kb.tools.gaps import search_report

        guides = {g.slug: g.title for g in self.library.snapshot().guides}
        return search_report(
            store, days=days, limit=limit, guides=guides, encode=self.embedder.encode, closest=self.closest_guide
        )

    def related(self, slug: str, limit: int = 4) -> list[tuple[str, str]]:
        """[(slug, title)] of the guides nearest `slug` in meaning; empty when the index cannot say."""
        try:
            return [(s, t) for s, t, _ in self.searcher.related(slug, limit)]
        except Exception:  # related guides are a nicety; a missing index must not break reading
            return []

    def status(self) -> dict[str, Any]:
        """Health: index generation, model, counts, and whether content is newer than the index."""
        out: dict[str, Any] = {"ok": True, "model": self.embedder.name, "guides": len(self.library.snapshot().guides)}
        try:
            gen = self.searcher.generation()
            out.update(generation=gen.name, chunks=len(gen.chunks), built_at=gen.built_at, index_model=gen.model)
            st = index_status(self.content_dir, self.index_dir, content=self._content_hashes)
            out["search_behind_content"] = st.stale
        except KBError as exc:  # a broken index: the same plain message a search gets
            out.update(ok=False, error=exc.message)
        except Exception:  # health must answer whatever is broken, but never with raw exception text
            log.exception("health check failed")
            out.update(ok=False, error="the search index could not be checked; the server log says why")
        return out

    def _content_hashes(self) -> ContentHashes:
        """The content folder's hashes, read again only when a file's path, size or mtime (or the day) changed."""
        # taken before reading, so an edit made during the read is seen on the next call
        key = (self.library.fingerprint(), self.today())
        cached = self._hashes
        if cached is None or cached[0] != key:
            cached = self._hashes = (key, content_hashes(self.content_dir, key[1]))
        return cached[1]

    def search_behind(self, guide: Guide) -> bool:
        """True when the live index holds another version of this guide (edited since the last build), or none."""
        try:
            indexed = self.searcher.generation().guides
        except Exception:  # no usable index: search cannot find this guide at all
            return True
        return indexed.get(guide.slug) != guide.content_hash

    def warm_up(self) -> None:
        """Load the model and the live index now (server start), so the first student waits for nothing."""
        try:
            self.searcher.generation()
            self.embedder.encode_query("warm up")
            self.library.snapshot()
            log.info("warm: model %s, index %s", self.embedder.name, self.searcher.generation().name)
        except Exception as exc:  # a missing index must not stop the server: pages still browse
            log.warning("warm-up incomplete: %s", getattr(exc, "message", exc))

    def edit_url(self, guide: Guide) -> str:
        rel = Path(guide.path)
        try:
            rel = Path(guide.path).resolve().relative_to(self.content_dir.resolve().parent)
        except ValueError:
            rel = Path("content") / guide.category / f"{guide.slug}.md"
        return f"{self.settings['KB_REPO_URL'].rstrip('/')}/edit/{self.settings['KB_REPO_BRANCH']}/{rel.as_posix()}"

    def today(self) -> dt.date:
        """The day stale banners are judged on: the KB_TODAY setting, else the real clock."""
        return clock.today(self.settings.get("KB_TODAY"))
