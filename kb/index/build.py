"""The build pipeline: guides -> chunks -> embeddings -> a new generation, written by kb.index.generation."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kb.content.chunking import MAX_CHARS, Chunk, chunk_guide
from kb.content.glossary import Glossary
from kb.content.guide import Guide, load_guides
from kb.content.render import RENDER_HINT, render_markdown
from kb.engines.embedding import Embedder
from kb.engines.embedding_cache import EmbeddingCache, cache_path
from kb.errors import ContentError, KBError, Problem, RenderError
from kb.index.generation import (
    FORMAT_VERSION,
    GRACE_SECONDS,
    check_files,
    content_hash,
    current_path,
    read_chunks,
    read_manifest,
    read_vectors,
    remove_debris,
    retire,
    write_generation,
)

log = logging.getLogger(__name__)

CHUNKING = {"version": 1, "max_chars": MAX_CHARS, "split": "heading, then paragraph"}
# Chunks of an unchanged guide are copied from the live generation only if the code that makes
# them is byte-identical; any edit to parsing, rendering or chunking re-chunks every guide.
CHUNKER_FINGERPRINT = hashlib.sha256(
    b"".join(
        (Path(__file__).parents[1] / "content" / name).read_bytes()
        for name in ("guide.py", "outline.py", "render.py", "chunking.py")
    )
).hexdigest()[:16]


@dataclass
class BuildReport:
    """What a build did; printed as the summary at the end of a build."""

    generation: str = ""
    guides: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    keyword_mode: str = "rewrite"
    seconds: float = 0.0
    embed_seconds: float = 0.0
    skipped: bool = False
    warnings: list[Problem] = field(default_factory=list)
    # slug -> [chunks embedded, chunks in the guide], for guides that had anything embedded
    embedded_by_guide: dict[str, list[int]] = field(default_factory=dict)
    reused_from_cache: int = 0
    encoder: str = ""
    full: bool = False
    debris_removed: int = 0
    generations_removed: list[str] = field(default_factory=list)
    cache_entries: int = 0

    def summary(self) -> str:
        """The first line is the headline; the following lines say what changed and what was reused."""
        if self.skipped:
            return (
                f"Index is up to date ({self.guides} guides, {self.chunks} chunks); nothing to do. "
                "Use --full to rebuild anyway."
            )
        lines = [
            f"Built {self.generation}: {self.guides} guides "
            f"({len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed); "
            f"{self.chunks} chunks ({self.embedded} embedded, {self.reused} reused); "
            f"keyword index {self.keyword_mode}; {self.seconds:.2f} s"
        ]
        for label, slugs in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if slugs:
                shown = ", ".join(slugs[:12]) + (f" and {len(slugs) - 12} more" if len(slugs) > 12 else "")
                lines.append(f"  {label}: {shown}")
        if self.embedded:
            if self.full:
                how = "everything (--full)"
            elif len(self.embedded_by_guide) > 8:
                how = f"new or changed sections of {len(self.embedded_by_guide)} guides"
            else:
                how = ", ".join(f"{s} {e} of {t} chunks" for s, (e, t) in sorted(self.embedded_by_guide.items()))
            plural = "s" if self.embedded != 1 else ""
            lines.append(
                f"  embedded {self.embedded} chunk{plural} in {self.embed_seconds:.2f} s with "
                f"{self.encoder or 'the model'}: {how}"
            )
        else:
            lines.append("  embedded nothing: every chunk's vector came from the cache")
        if self.debris_removed:
            lines.append(f"  removed {self.debris_removed} leftover(s) of an interrupted build")
        if self.generations_removed:
            lines.append(f"  removed old generation(s): {', '.join(self.generations_removed)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = [p.as_dict() for p in self.warnings]
        return d


@contextlib.contextmanager
def _build_lock(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise KBError(f"another build is running on {index_dir}; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _previous(
    index_dir: Path, model: str, full: bool
) -> tuple[Path | None, dict | None, list[Chunk], np.ndarray | None]:
    """The live generation to reuse embeddings from, if it is compatible."""
    gen = current_path(index_dir)
    if gen is None or full:
        return None, None, [], None
    try:
        # an older index format still holds good vectors: reuse them, rewrite everything else
        manifest = read_manifest(gen, any_format=True)
        if manifest.get("model") != model or manifest.get("chunking") != CHUNKING:
            return None, None, [], None
        check_files(gen, manifest)  # a damaged live generation is rebuilt in full, never reused
        chunks = read_chunks(gen)
        vectors = read_vectors(gen)
        if (
            len(vectors) != len(chunks)
            or manifest.get("counts", {}).get("chunks") != len(chunks)
            or manifest.get("dimension") != vectors.shape[1]
        ):
            return None, None, [], None
        return gen, manifest, chunks, vectors
    except (KBError, OSError, ValueError, KeyError) as exc:
        log.warning("previous index unusable for reuse (%s); building everything", exc)
        return None, None, [], None


def build_index(
    content_dir: Path | str,
    index_dir: Path | str,
    embedder: Embedder,
    *,
    full: bool = False,
    progress: bool = False,
    keep: int = 2,
    today: dt.date | None = None,
    force: bool = False,
    grace: float = GRACE_SECONDS,
    before_swap: Callable[[Path], None] | None = None,
    after_embed: Callable[[BuildReport], None] | None = None,
) -> BuildReport:
    """Build (incrementally) a new index generation and make it live.

    Every chunk's vector is looked up in the embedding cache (by model and text hash) and in the
    live generation; only the misses are encoded, so the encoder (and its model) is not even
    loaded when nothing changed. `full` ignores both and encodes everything.

    Args:
        content_dir: Folder of guides.
        index_dir: Folder holding the generations and the `current` link.
        embedder: Encoder for passages; its `name` is recorded in the manifest.
        full: Re-embed and rewrite everything instead of reusing cached vectors.
        progress: Show a progress bar while embedding.
        keep: Generations to keep, the live one included.
        force: Build even when the content is unchanged.
        grace: Seconds a retired generation is kept for servers still finishing requests on it.
        before_swap: Test hook called with the finished temporary folder before the swap.
        after_embed: Test hook called once the vectors are computed and cached.

    Raises:
        ContentError: listing every broken guide; the index is not touched.
    """
    started = time.perf_counter()
    content_dir, index_dir = Path(content_dir), Path(index_dir)
    guides, problems = load_guides(content_dir, today)
    glossary = Glossary.load(content_dir)
    if any(p.level == "error" for p in problems):
        raise ContentError(problems)
    if not guides:
        raise ContentError(
            [
                Problem(
                    str(content_dir),
                    0,
                    0,
                    "error",
                    "no guides found",
                    "add content/<category>/<slug>.md files",
                    "content.empty",
                )
            ]
        )
    report = BuildReport(warnings=[p for p in problems if p.level != "error"], guides=len(guides), full=full)
    chash = content_hash(guides, glossary)

    with _build_lock(index_dir):
        report.debris_removed = remove_debris(index_dir)
        prev_gen, prev_manifest, prev_chunks, prev_vectors = _previous(index_dir, embedder.name, full)
        # a generation of an older format lends its vectors, nothing else
        same_format = prev_manifest is not None and prev_manifest.get("format_version") == FORMAT_VERSION
        if same_format and prev_manifest.get("content_hash") == chash and not (full or force):
            report.skipped = True
            report.generation = prev_gen.name if prev_gen else ""
            report.chunks = prev_manifest["counts"]["chunks"]
            report.generations_removed = retire(index_dir, keep, grace)
            report.seconds = time.perf_counter() - started
            return report

        old_guides: dict[str, str] = (prev_manifest or {}).get("guides", {})
        new_guides = {g.slug: g.content_hash for g in guides}
        report.added = sorted(set(new_guides) - set(old_guides))
        report.removed = sorted(set(old_guides) - set(new_guides))
        report.changed = sorted(s for s in new_guides if s in old_guides and old_guides[s] != new_guides[s])

        chunks = _chunks(guides, old_guides, prev_manifest, prev_chunks, full)
        report.chunks = len(chunks)
        vectors = _embed(index_dir, embedder, chunks, prev_chunks, prev_vectors, full, progress, report)
        if after_embed:
            after_embed(report)

        touched = set(report.added) | set(report.changed) | set(report.removed)
        incremental = same_format and not full and len(touched) * 2 < max(len(new_guides), 1)
        gen_name = write_generation(
            index_dir,
            chunks,
            vectors,
            glossary,
            {
                "model": embedder.name,
                "chunking": CHUNKING,
                "content_hash": chash,
                "guides": new_guides,
                "counts": {"guides": len(guides), "chunks": len(chunks)},
                "chunker": CHUNKER_FINGERPRINT,
            },
            started,
            keyword_from=(prev_gen, touched) if incremental else None,  # type: ignore[arg-type]
            before_swap=before_swap,
        )
        if incremental:
            report.keyword_mode = f"updated ({len(touched)} guide{'s' if len(touched) != 1 else ''})"
        report.generations_removed = retire(index_dir, keep, grace)
        report.generation = gen_name
        report.seconds = time.perf_counter() - started
        log.info(report.summary().splitlines()[0])
        return report


def _chunks(
    guides: list[Guide], old_guides: dict[str, str], prev_manifest: dict | None, prev_chunks: list[Chunk], full: bool
) -> list[Chunk]:
    """Chunk every guide, copying the chunks of unchanged guides from the live generation.

    Rendering Markdown is most of a build's time after embedding; an unchanged guide (same file
    hash, same chunking code) has the same chunks as before.
    """
    reusable: dict[str, list[Chunk]] = {}
    if not full and prev_manifest and prev_manifest.get("chunker") == CHUNKER_FINGERPRINT:
        for c in prev_chunks:
            reusable.setdefault(c.slug, []).append(c)
    chunks: list[Chunk] = []
    failed: list[Problem] = []
    for g in guides:
        if g.slug in reusable and old_guides.get(g.slug) == g.content_hash:
            chunks.extend(reusable[g.slug])
            continue
        try:
            chunks.extend(chunk_guide(g, render_markdown(g.body)))
        except RenderError as exc:  # past the loader's limits, still too much for the renderer
            failed.append(Problem(g.path, g.body_line, 1, "error", exc.message, RENDER_HINT, "body.render"))
    if failed:
        raise ContentError(failed)
    return chunks


def _embed(
    index_dir: Path,
    embedder: Embedder,
    chunks: list[Chunk],
    prev_chunks: list[Chunk],
    prev_vectors: np.ndarray | None,
    full: bool,
    progress: bool,
    report: BuildReport,
) -> np.ndarray:
    """Vectors for `chunks`: from the cache or the live generation where possible, encoded otherwise.

    The cache is saved (atomically) before the generation is written, so the work survives a
    build that fails later: the retry encodes nothing again.
    """
    cache = (
        EmbeddingCache(cache_path(index_dir, embedder.name), embedder.name)
        if full
        else EmbeddingCache.load(index_dir, embedder.name)
    )
    live: dict[str, int] = {}
    if prev_vectors is not None:
        for row, c in enumerate(prev_chunks):
            live.setdefault(c.text_hash, row)
    hashes = [c.text_hash for c in chunks]
    found: dict[str, np.ndarray] = {}
    for h in hashes:
        if h in found:
            continue
        vec = cache.get(h)
        if vec is None and h in live:
            vec = np.asarray(prev_vectors[live[h]], dtype=np.float32)  # type: ignore[index]
        if vec is not None:
            found[h] = vec
    dims = {len(v) for v in found.values()}
    if len(dims) > 1:  # vectors of different widths under one model name: trust none of them
        log.warning("cached vectors disagree in dimension %s; re-embedding everything", sorted(dims))
        found = {}
    todo_hashes = list(dict.fromkeys(h for h in hashes if h not in found))
    todo_index = {h: i for i, h in enumerate(todo_hashes)}
    first_of = {}
    for c, h in zip(chunks, hashes, strict=True):
        first_of.setdefault(h, c)
    report.reused_from_cache = sum(1 for h in hashes if cache.get(h) is not None and h in found)
    t0 = time.perf_counter()
    fresh = embedder.encode([first_of[h].embed_text for h in todo_hashes], progress=progress) if todo_hashes else None
    report.embed_seconds = time.perf_counter() - t0
    report.encoder = getattr(embedder, "last_backend", "")
    if fresh is not None:
        if found and fresh.shape[1] != len(next(iter(found.values()))):
            log.warning(
                "the model now gives %d-dimensional vectors, the cache holds others; re-embedding everything",
                fresh.shape[1],
            )
            return _embed(index_dir, embedder, chunks, [], None, True, progress, report)
        for h, i in todo_index.items():
            found[h] = fresh[i]
    dim = len(next(iter(found.values())))
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        vectors[i] = found[h]
    embedded = [h not in todo_index for h in hashes]
    report.embedded = sum(1 for e in embedded if not e)
    report.reused = len(chunks) - report.embedded
    per_guide: dict[str, list[int]] = {}
    for c, reused in zip(chunks, embedded, strict=True):
        counts = per_guide.setdefault(c.slug, [0, 0])
        counts[0] += 0 if reused else 1
        counts[1] += 1
    report.embedded_by_guide = {s: v for s, v in per_guide.items() if v[0]}
    new_cache = cache.updated({h: found[h] for h in hashes})
    try:
        new_cache.save()
        report.cache_entries = len(new_cache)
    except OSError as exc:  # a cache that cannot be written only costs the next build time
        log.warning("could not save the embedding cache %s (%s); the next build re-embeds more", new_cache.path, exc)
    return vectors


def build_from_chunks(
    index_dir: Path | str,
    chunks: list[Chunk],
    vectors: np.ndarray,
    model: str,
    *,
    glossary: Glossary | None = None,
    keep: int = 2,
) -> BuildReport:
    """Make a generation from chunks whose vectors are already computed, and make it live.

    For corpora that do not come from a content folder (benchmarks, imports): the same files, manifest
    and atomic swap as `build_index`, without reading guides or running the encoder.

    Args:
        index_dir: Folder holding the generations and the `current` link.
        chunks: The passages, in row order.
        vectors: (len(chunks), dim) float32 unit vectors, row i for chunks[i].
        model: Model name recorded in the manifest (a Searcher refuses a different one).
        glossary: Acronyms for query expansion (none by default).
        keep: Generations to keep, the live one included.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(chunks):
        raise ValueError(f"need one vector per chunk: {len(chunks)} chunks, vectors of shape {vectors.shape}")
    glossary = glossary or Glossary(())
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.id.encode() + b"\0" + c.text_hash.encode())
    slugs = {c.slug: "" for c in chunks}
    report = BuildReport(guides=len(slugs), chunks=len(chunks), added=sorted(slugs))
    with _build_lock(index_dir):
        fields = {
            "model": model,
            "chunking": CHUNKING,
            "content_hash": h.hexdigest(),
            "guides": slugs,
            "counts": {"guides": len(slugs), "chunks": len(chunks)},
        }
        report.generation = write_generation(index_dir, chunks, vectors, glossary, fields, started)
        retire(index_dir, keep)
    report.seconds = time.perf_counter() - started
    return report
